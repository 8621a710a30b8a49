"""reports/index.html opened as a reader opens it: in headless Chromium (Debian's
chromium-headless-shell or chromium, or the Google Chrome that GitHub's runners carry). Its
screenshots must not be blank, and the verdict the page shows must be the one evidence.json
records.

    python -m harness.page_check reports/     # writes reports/index.png and index-timelines.png
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from html.parser import HTMLParser
from pathlib import Path

BROWSERS = ("chromium-headless-shell", "chromium", "google-chrome")
WINDOW = "1280,3000"
TIMEOUT_S = 60
# A page is blank when almost every pixel has the background's colour.
MIN_INK_SHARE = 0.02


class PageCheckError(Exception):
    pass


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    raise PageCheckError(
        f"no headless Chromium ({' or '.join(BROWSERS)}): scripts/ensure-tools.sh installs it"
    )


def _chromium(*args: str) -> subprocess.CompletedProcess[str]:
    # Its own profile each time: no state from an earlier run; --no-sandbox because CI runs
    # as root, where Chromium's sandbox refuses to start.
    with tempfile.TemporaryDirectory(prefix="crm-cert-chromium-") as profile:
        command = [
            browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={WINDOW}",
            *args,
        ]
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=TIMEOUT_S, check=False
        )
    if result.returncode != 0:
        raise PageCheckError(f"{' '.join(command)} exited {result.returncode}: {result.stderr}")
    return result


def screenshot(url: str, png: Path) -> Path:
    _chromium(f"--screenshot={png}", url)
    if not png.is_file():
        raise PageCheckError(f"Chromium wrote no screenshot of {url}")
    return png


def ink_share(png: Path) -> float:
    """The share of pixels that differ from the most common colour (the background)."""
    import matplotlib.image
    import numpy as np

    rgb = (matplotlib.image.imread(png)[..., :3] * 255).astype(np.uint32)
    packed = (rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]).ravel()
    background = np.bincount(packed).argmax()
    return float((packed != background).mean())


class _Verdict(HTMLParser):
    """The text of the element with id="verdict"."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.inside:
            self.inside += 1
        elif ("id", "verdict") in attrs:
            self.inside = 1

    def handle_endtag(self, tag: str) -> None:
        if self.inside:
            self.inside -= 1

    def handle_data(self, data: str) -> None:
        if self.inside:
            self.text += data


def shown_verdict(url: str) -> str:
    """The verdict as the browser rendered the page (its DOM after load)."""
    parser = _Verdict()
    parser.feed(_chromium("--dump-dom", url).stdout)
    return parser.text.strip()


def check(directory: Path) -> list[str]:
    """What is wrong with the page in `directory` (empty: nothing); writes its screenshots."""
    page = (directory / "index.html").resolve()
    evidence = json.loads((directory / "evidence.json").read_text())
    problems = []
    shown = shown_verdict(page.as_uri())
    if shown != evidence["verdict"]:
        problems.append(f"the page shows {shown!r}, evidence.json says {evidence['verdict']!r}")
    for name, url in (
        ("index.png", page.as_uri()),
        ("index-timelines.png", page.as_uri() + "#timelines"),
    ):
        share = ink_share(screenshot(url, directory / name))
        if share < MIN_INK_SHARE:
            problems.append(f"{name} is blank: {share:.1%} of its pixels are not background")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    directory = Path(args[0] if args else "reports")
    try:
        problems = check(directory)
    except (PageCheckError, OSError, subprocess.TimeoutExpired) as error:
        print(f"page check: {error}", file=sys.stderr)
        return 1
    for problem in problems:
        print(f"page check: {problem}", file=sys.stderr)
    if not problems:
        print(f"page check: {directory / 'index.html'} shows its verdict; screenshots written")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
