"""The operator documents (docs/*.md): their shell blocks, their headings' anchors, and the runs.

Convention: every shell command in the documents is in a fenced block whose info string says
where it runs:

    ```sh stack   run verbatim inside the stack's docker network (crm-events-health, prometheus,
                  alertmanager, kafka resolve), from a container of the project's app image
    ```sh host    run from the repository root on the host (promtool, amtool, the suites)

No other shell block is allowed in docs/. A block is run as one script with `sh -e`: every
command in it must succeed, and a block that changes the stack undoes the change before it ends.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import unicodedata
from dataclasses import dataclass, replace
from pathlib import Path

from harness.paths import PROJECT as REPO

DOCS_DIR = REPO / "docs"
README = REPO / "README.md"
LOCATIONS = ("stack", "host")
# Info-string languages that mean "a shell session": in docs/ only `sh stack` and `sh host`.
SHELL_LANGUAGES = frozenset(
    {
        "sh",
        "bash",
        "shell",
        "zsh",
        "console",
        "shell-session",
        "shellsession",
        "powershell",
        "ps1",
        "pwsh",
        "bat",
        "cmd",
        "batch",
    }
)
# Where the alert rules' runbook_url annotations point: the docs of this repository.
RUNBOOK_URL = re.compile(
    r"^https://github\.com/aetherlink/crm-events-cert/blob/main/(?P<path>[^#]+)#(?P<anchor>.+)$"
)

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_HEADING = re.compile(r"^ {0,3}(?P<level>#{1,6})[ \t]+(?P<text>.*?)(?:[ \t]+#+)?[ \t]*$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a document."""

    path: Path
    line: int  # 1-based line of the opening fence
    end: int  # 1-based line of the closing fence (the last line, when the block is unclosed)
    info: str
    text: str

    @property
    def language(self) -> str:
        words = self.info.split()
        return words[0].lower() if words else ""

    @property
    def location(self) -> str | None:
        """`stack` or `host` for a well-formed shell block, else None."""
        words = self.info.split()
        if len(words) == 2 and words[0] == "sh" and words[1] in LOCATIONS:
            return words[1]
        return None

    @property
    def is_shell(self) -> bool:
        return self.language in SHELL_LANGUAGES

    @property
    def name(self) -> str:
        try:
            shown = self.path.relative_to(REPO)
        except ValueError:
            shown = self.path
        return f"{shown}:{self.line}"

    @property
    def commands(self) -> list[str]:
        """The block's commands: lines joined across trailing backslashes, comments and blank
        lines left out."""
        commands: list[str] = []
        pending = ""
        for line in self.text.splitlines():
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            commands.append((pending + line).strip())
            pending = ""
        if pending.strip():
            commands.append(pending.strip())
        return commands


# A documented pytest command: when the certify run that checks the documents has run its tests,
# the block runs it with --collect-only and shares that run's outcomes (acceptance/
# test_docs_commands.py) instead of repeating a drill.
_PYTEST_COMMAND = re.compile(r"^python3? -m pytest\b")
_COLLECTED = re.compile(r"^(?P<nodeid>[\w./-]+\.py::\S+)$", re.MULTILINE)
_VERBOSITY = re.compile(r"^-(?P<flags>[vq]+)$")


def _verbosity(command: str) -> int:
    """pytest's verbosity from a command's -v/-q flags (each counts, as pytest counts them)."""
    level = 0
    for word in shlex.split(command):
        flags = _VERBOSITY.match(word)
        letters = flags["flags"] if flags else {"--verbose": "v", "--quiet": "q"}.get(word, "")
        level += letters.count("v") - letters.count("q")
    return level


def collect_only(command: str) -> str:
    """The options that make a pytest command list the node ids it would run, one per line
    (`--collect-only` at verbosity -1, whatever -v/-q the command already has)."""
    level = _verbosity(command)
    return " --collect-only " + ("-q " * (level + 1) if level >= -1 else "-v " * (-1 - level))


def collecting_only(block: Block) -> Block | None:
    """The block with `--collect-only` added to each of its `python -m pytest` commands (each
    of its other commands unchanged), or None when it runs no pytest."""
    lines, changed, command = [], False, ""
    for line in block.text.splitlines():
        command += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            if _PYTEST_COMMAND.match(command.strip()):
                line, changed = line + collect_only(command).rstrip(), True
            command = ""
        lines.append(line)
    return replace(block, text="\n".join(lines) + "\n") if changed else None


# Host commands that read the repository's files and change nothing anywhere.
_FILE_CHECK = re.compile(
    r"^(promtool (check|test) |amtool check-config |amtool config routes test --config\.file=)"
)


def checks_files_only(block: Block) -> bool:
    """A host block whose every command checks the repository's files, or is a pytest command
    that a certify run only collects: it can run at any moment, beside other blocks."""
    return all(
        _FILE_CHECK.match(command) or _PYTEST_COMMAND.match(command) for command in block.commands
    )


def collected_nodeids(output: str) -> list[str]:
    """The node ids `pytest --collect-only -q` printed."""
    return _COLLECTED.findall(output)


def fenced_blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file, in order."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening or (opening["fence"][0] == "`" and "`" in opening["info"]):
            index += 1
            continue
        fence = opening["fence"]
        body: list[str] = []
        end = index + 1
        while end < len(lines):
            closing = lines[end].strip()
            if closing.startswith(fence[0] * len(fence)) and set(closing) == {fence[0]}:
                break
            body.append(lines[end])
            end += 1
        closing_line = min(end, len(lines) - 1) + 1
        blocks.append(
            Block(path, index + 1, closing_line, opening["info"].strip(), "\n".join(body))
        )
        index = end + 1
    return blocks


# The design document is for the people who change this project: it names commands, it does not
# give an operator steps to run.
DESIGN_DOCUMENT = "design.md"


def doc_files() -> list[Path]:
    """The operator documents."""
    return sorted(path for path in DOCS_DIR.glob("*.md") if path.name != DESIGN_DOCUMENT)


def shell_blocks(paths: list[Path] | None = None) -> list[Block]:
    """Every shell block of the documents (well-formed or not)."""
    return [
        block
        for path in (doc_files() if paths is None else paths)
        for block in fenced_blocks(path)
        if block.is_shell
    ]


def runnable_blocks() -> list[Block]:
    """The `sh stack` and `sh host` blocks of docs/*.md, and of README.md if it has any."""
    found = [block for block in shell_blocks() if block.location]
    if README.exists():
        found += [block for block in fenced_blocks(README) if block.location]
    return found


def malformed_shell_blocks(paths: list[Path] | None = None) -> list[Block]:
    """Shell blocks of the documents that do not say `sh stack` or `sh host`."""
    return [block for block in shell_blocks(paths) if block.location is None]


# --- anchors ------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading)  # inline code keeps its text
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links keep their text
    text = text.strip().lower()
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in " -_" or category[0] in ("L", "N") or category == "Mn":
            kept.append(char)
    return "".join(kept).replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str, str]]:
    """(level, text, anchor) of every heading outside code blocks, with GitHub's -1, -2 suffixes
    for repeated anchors."""
    inside = _block_lines(path)
    seen: dict[str, int] = {}
    found = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _HEADING.match(line)
        if not match or number in inside:
            continue
        anchor = github_anchor(match["text"])
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.append((len(match["level"]), match["text"], f"{anchor}-{count}" if count else anchor))
    return found


def _block_lines(path: Path) -> set[int]:
    """Line numbers that belong to fenced code blocks, fences included."""
    return {number for block in fenced_blocks(path) for number in range(block.line, block.end + 1)}


def all_anchors(path: Path) -> set[str]:
    """Anchors of every heading of a Markdown file (what a link's #fragment may name)."""
    return {anchor for _, _, anchor in headings(path)}


def section_anchors(path: Path, level: int = 2) -> set[str]:
    """Anchors of the headings of one level (`## ` by default) of a Markdown file."""
    return {anchor for found_level, _, anchor in headings(path) if found_level == level}


# --- running ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    block: Block
    exit_code: int
    output: str

    def describe(self) -> str:
        return (
            f"{self.block.name} (`{self.block.info}`) exited {self.exit_code}\n"
            f"--- script ---\n{self.block.text}\n--- output ---\n{self.output}"
        )


def run_on_host(block: Block, env: dict[str, str], timeout_s: float) -> Run:
    """Run a `sh host` block from the repository root with `sh -e`, the current Python's
    environment first on PATH, and `env` added to the environment."""
    environ = os.environ | env
    environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{environ.get('PATH', '')}"
    try:
        result = subprocess.run(
            ["sh", "-ec", block.text],
            cwd=REPO,
            env=environ,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        output = _text(error.stdout) + _text(error.stderr)
        return Run(block, -1, f"{output}\n(timed out after {timeout_s:g}s)")
    return Run(block, result.returncode, result.stdout + result.stderr)


def run_in_container(block: Block, container: object, timeout_s: float) -> Run:
    """Run a `sh stack` block with `sh -e` inside a running container of the stack's network
    (a docker SDK container); `timeout` there bounds it."""
    result = container.exec_run(  # type: ignore[attr-defined]
        ["timeout", str(int(timeout_s)), "sh", "-ec", block.text], demux=False
    )
    output = (result.output or b"").decode(errors="replace")
    if result.exit_code == 124:
        output += f"\n(timed out after {timeout_s:g}s)"
    return Run(block, result.exit_code, output)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


# --- prose: inline commands and links -----------------------------------------------------

# First words of inline code spans that are shell commands (a span of one word names a tool).
COMMAND_WORDS = frozenset(
    {
        "curl",
        "docker",
        "kubectl",
        "amtool",
        "promtool",
        "python",
        "python3",
        "pytest",
        "nox",
        "git",
        "sh",
        "bash",
        "helm",
        "wget",
    }
)
_INLINE_CODE = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")
_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def _prose_lines(path: Path) -> list[tuple[int, str]]:
    """(number, text) of the lines outside fenced code blocks."""
    inside = _block_lines(path)
    return [
        (number, line)
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if number not in inside
    ]


def inline_commands(path: Path) -> list[tuple[int, str]]:
    """Inline code spans of the prose that are shell commands: a command word and at least one
    more word (`sh stack` and `sh host`, the block labels, excepted)."""
    found = []
    for number, line in _prose_lines(path):
        for match in _INLINE_CODE.finditer(line):
            words = match.group(1).split()
            if len(words) < 2 or words[0] not in COMMAND_WORDS:
                continue
            if words[0] == "sh" and len(words) == 2 and words[1] in LOCATIONS:
                continue
            found.append((number, match.group(1)))
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of the Markdown links of the prose."""
    return [
        (number, match["target"])
        for number, line in _prose_lines(path)
        for match in _LINK.finditer(line)
    ]
