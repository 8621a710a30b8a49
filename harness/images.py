"""The stack's container images: which ones a run uses, and their offline build.

Build: ``python -m harness.images [--force] [--only NAME]`` (``nox -s images``).

Two image sets (docs/design.md, sections 1 and 6):

* ``upstream``: the public images (apache/kafka, danielqsj/kafka-exporter, prom/prometheus,
  prom/alertmanager, ghcr.io/shopify/toxiproxy, grafana/grafana), pulled by Docker when first used,
  for users who reach a registry. Only the project's own app image is built here.
* ``offline``: every image built on this machine without any pull: a Debian bookworm base from
  debootstrap (``docker import``), and images ``FROM`` it whose downloads happen on the host through
  the package registries (Maven Central for Kafka, the Go module proxy for the exporter and
  toxiproxy, PyPI for the app's wheels). Their Dockerfiles and inputs live in stack/images/.

Every offline image is tagged ``crm-cert/<name>:<hash>``, the hash covering the image's inputs
(Dockerfile, the files copied in, package lists, pinned versions, the parent's tag), so a second
build finds every tag present and builds nothing.

Selection: ``ensure_images(selection)`` with ``"auto"``, ``"upstream"`` or ``"offline"`` (default:
the ``CRM_CERT_IMAGES`` environment variable, else ``auto``: upstream when the registries the
upstream images come from answer, offline otherwise; the choice is printed with its reason
(``choose``)); every image name can be overridden
with ``CRM_CERT_IMAGE_<FIELD>`` (``CRM_CERT_IMAGE_KAFKA``, ``CRM_CERT_IMAGE_KAFKA_EXPORTER``, ...;
``CRM_CERT_IMAGE_GRAFANA=`` empty means no Grafana). An overridden image is never built.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import time
import tomllib
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from harness import engines, paths

REPO_ROOT = paths.PROJECT
IMAGES_DIR = REPO_ROOT / "stack" / "images"
BUILD_DIR = paths.BUILD_DIR / "images"

REPOSITORY = "crm-cert"
LABEL = "crm-cert.image"  # on every image built here: the image's short name
INPUTS_LABEL = "crm-cert.inputs"  # the input hash, also the tag
HASH_LENGTH = 12

# Pinned inputs. Each is part of the hash of the images that use it.
DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = os.environ.get("CRM_CERT_DEBIAN_MIRROR", "")  # empty: debootstrap's default
OTELCOL_BUILDER = "go.opentelemetry.io/collector/cmd/builder@v0.140.0"
OTEL_CONTRIB = "github.com/open-telemetry/opentelemetry-collector-contrib"
TOXIPROXY_MODULE = "github.com/Shopify/toxiproxy/v2"
TOXIPROXY_VERSION = "v2.12.0"
# The upstream set's app image: the official Python base of the host's Python (the wheels are
# built on the host, for its interpreter), and amtool from the upstream Alertmanager image.
PYTHON_IMAGE = f"python:{sys.version_info.major}.{sys.version_info.minor}-slim-bookworm"
UPSTREAM_ALERTMANAGER = f"prom/alertmanager:v{engines.ALERTMANAGER.version}"
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
}

SELECTION_ENV = "CRM_CERT_IMAGES"
# A directory holding the offline set as one `docker save` archive, named by the hash of its tags
# (CI caches keep it between runs): a run missing images loads it instead of building, and a run
# that has the whole set saves it when no archive of these inputs is there. One archive, not one
# per image: each image carries the base's layers, which one archive stores once (0.8 GB, not
# 2.4 GB).
CACHE_ENV = "CRM_CERT_IMAGE_CACHE"
OVERRIDE_ENV_PREFIX = "CRM_CERT_IMAGE_"
SELECTIONS = ("auto", "upstream", "offline")
# Where the upstream set's images come from; `auto` asks each whether it answers.
REGISTRIES = ("registry-1.docker.io", "ghcr.io")
REGISTRY_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ImageSet:
    """The image reference of every container the stack starts."""

    kafka: str
    kafka_exporter: str
    prometheus: str
    alertmanager: str
    toxiproxy: str
    app: str
    grafana: str | None
    # Which set, and why it was chosen (printed, and in the report).
    selection: str = ""
    reason: str = ""


# The fields that name an image (CRM_CERT_IMAGE_<FIELD> overrides each).
IMAGE_FIELDS = tuple(
    f.name for f in dataclasses.fields(ImageSet) if f.name not in ("selection", "reason")
)


# --- the offline images: what each one is made of --------------------------------------------


@dataclass(frozen=True)
class Spec:
    name: str  # short name: crm-cert/<name>, stack/images/<name>/
    field: str | None  # the ImageSet field it serves (None: the base)
    parent: str | None  # the offline image it is FROM, or None
    pins: tuple[str, ...] = ()  # pinned versions and other strings that shape the image
    extra_inputs: Callable[[], list[Path]] | None = None  # files outside stack/images/<name>/
    image_set: str = "offline"  # the set it belongs to: "offline", or "upstream" (built there)


# What the app image runs (the readiness probe, the consumer, the webhook receiver): these
# packages and the project's runtime dependencies, not the host-side harness and suites.
APP_PACKAGES = ("probe", "stack")
APP_DISTRIBUTION = "crm-events-app"


def app_dependencies() -> list[str]:
    """The project's runtime requirements: from the checkout's pyproject.toml, or from the
    installed distribution's metadata (its extras left out)."""
    if paths.CHECKOUT:
        config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
        return list(config["project"]["dependencies"])
    requires = importlib.metadata.requires("crm-events-cert") or []
    return [r for r in requires if "extra ==" not in r]


def _app_sources() -> list[Path]:
    return [
        p
        for package in APP_PACKAGES
        for p in (REPO_ROOT / package).rglob("*.py")
        if "__pycache__" not in p.parts
    ]


def app_pyproject() -> str:
    """The app's own project file: the wheel the app images install is built from it."""
    requirements = ", ".join(json.dumps(r) for r in app_dependencies())
    packages = ", ".join(json.dumps(f"{p}*") for p in APP_PACKAGES)
    return (
        '[build-system]\nrequires = ["setuptools>=69", "wheel"]\n'
        'build-backend = "setuptools.build_meta"\n\n'
        f'[project]\nname = "{APP_DISTRIBUTION}"\nversion = "0"\nrequires-python = ">=3.11"\n'
        f"dependencies = [{requirements}]\n\n"
        f"[tool.setuptools.packages.find]\ninclude = [{packages}]\n"
    )


# One text: the app images' tags hash it, and their wheel is built from it.
APP_PYPROJECT = app_pyproject()


SPECS: dict[str, Spec] = {
    spec.name: spec
    for spec in (
        Spec(
            "base", None, None, pins=(DEBIAN_SUITE, DEBIAN_MIRROR, repr(sorted(BASE_ENV.items())))
        ),
        Spec("kafka", "kafka", "base"),
        Spec("kafka-exporter", "kafka_exporter", "base", pins=(OTELCOL_BUILDER,)),
        Spec("prometheus", "prometheus", "base", pins=(engines.PROMETHEUS.build_key,)),
        Spec("alertmanager", "alertmanager", "base", pins=(engines.ALERTMANAGER.build_key,)),
        Spec("toxiproxy", "toxiproxy", None, pins=(f"{TOXIPROXY_MODULE}@{TOXIPROXY_VERSION}",)),
        Spec(
            "app",
            "app",
            "base",
            pins=(engines.ALERTMANAGER.build_key, APP_PYPROJECT),
            extra_inputs=_app_sources,
        ),
        Spec(
            "app-python",
            "app",
            None,
            pins=(PYTHON_IMAGE, UPSTREAM_ALERTMANAGER, APP_PYPROJECT),
            extra_inputs=_app_sources,
            image_set="upstream",
        ),
    )
}
ORDER = list(SPECS)
OFFLINE = [name for name in ORDER if SPECS[name].image_set == "offline"]  # what a build builds


def _image_files(name: str) -> list[Path]:
    root = IMAGES_DIR / name
    return sorted(
        p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.relative_to(root).parts
    )


def _hash_inputs(spec: Spec, parent_tag: str | None) -> str:
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(f"{label}\0{len(data)}\0".encode())
        digest.update(data)

    add("name", spec.name.encode())
    add("parent", (parent_tag or "").encode())
    for pin in spec.pins:
        add("pin", pin.encode())
    files = _image_files(spec.name) + (spec.extra_inputs() if spec.extra_inputs else [])
    for path in sorted(set(files)):
        add(f"file:{path.relative_to(REPO_ROOT).as_posix()}", path.read_bytes())
        add("mode", str(path.stat().st_mode & 0o111 != 0).encode())
    if spec.name in ("kafka-exporter", "toxiproxy", "prometheus", "alertmanager", "app"):
        add("go", engines.go_version().encode())
    return digest.hexdigest()[:HASH_LENGTH]


def _tag(name: str, cache: dict[str, str]) -> str:
    if name not in cache:
        spec = SPECS[name]
        parent = _tag(spec.parent, cache) if spec.parent else None
        cache[name] = f"{REPOSITORY}/{name}:{_hash_inputs(spec, parent)}"
    return cache[name]


def offline_tags(names: Sequence[str] | None = None) -> dict[str, str]:
    """The offline images' tags by short name (base included), computed from the inputs only."""
    cache: dict[str, str] = {}
    return {name: _tag(name, cache) for name in (names or ORDER)}


def offline_images() -> ImageSet:
    """The offline image set's tags (no build, no Docker; env overrides not applied)."""
    tags = offline_tags()
    return ImageSet(
        kafka=tags["kafka"],
        kafka_exporter=tags["kafka-exporter"],
        prometheus=tags["prometheus"],
        alertmanager=tags["alertmanager"],
        toxiproxy=tags["toxiproxy"],
        app=tags["app"],
        grafana=None,  # offline there is no Grafana: dashboards are checked statically
    )


def _upstream() -> ImageSet:
    return ImageSet(
        kafka="apache/kafka:3.9.1",
        kafka_exporter="danielqsj/kafka-exporter:v1.9.0",
        prometheus=f"prom/prometheus:v{engines.PROMETHEUS.version}",
        alertmanager=UPSTREAM_ALERTMANAGER,
        toxiproxy="ghcr.io/shopify/toxiproxy:2.12.0",
        app=offline_tags(["app-python"])["app-python"],  # the project's own: built here
        grafana="grafana/grafana:12.1.1",
    )


UPSTREAM: ImageSet = _upstream()


def _selection(selection: str | None) -> str:
    chosen = (selection or os.environ.get(SELECTION_ENV) or "auto").strip().lower()
    if chosen not in SELECTIONS:
        raise ValueError(f"image selection must be one of {SELECTIONS}, not {chosen!r}")
    return chosen


def registry_problem(host: str) -> str | None:
    """Why a registry's API does not answer from here, or None when it does (any HTTP status,
    401 included: an answer is all `auto` needs; pulls may still need credentials)."""
    try:
        httpx.get(f"https://{host}/v2/", timeout=REGISTRY_TIMEOUT_S)
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}"
    return None


@dataclass(frozen=True)
class Choice:
    selection: str  # "upstream" or "offline"
    reason: str


def choose(
    selection: str | None = None, problem: Callable[[str], str | None] = registry_problem
) -> Choice:
    """The image set a run uses and why: the one asked for, or for `auto` upstream when every
    registry of the upstream images answers from this machine, else offline."""
    chosen = _selection(selection)
    if chosen != "auto":
        return Choice(chosen, f"asked for ({SELECTION_ENV} or --images)")
    for host in REGISTRIES:
        found = problem(host)
        if found:
            return Choice("offline", f"auto: {host} does not answer ({found[:160]})")
    return Choice("upstream", f"auto: {' and '.join(REGISTRIES)} answer")


def _overrides() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in IMAGE_FIELDS:
        value = os.environ.get(OVERRIDE_ENV_PREFIX + name.upper())
        if value is not None:
            found[name] = value.strip() or None
    return found


def image_set(selection: str | Choice | None = None) -> ImageSet:
    """The images a run uses, with env overrides applied; builds nothing."""
    choice = selection if isinstance(selection, Choice) else choose(selection)
    images = UPSTREAM if choice.selection == "upstream" else offline_images()
    return dataclasses.replace(
        images,
        **_overrides(),  # type: ignore[arg-type]
        selection=choice.selection,
        reason=choice.reason,
    )


def ensure_images(selection: str | None = None, *, console: Any = None) -> ImageSet:
    """The images a run uses, building the local ones that are missing.

    ``"offline"``: every offline image not overridden by CRM_CERT_IMAGE_*; ``"upstream"``: the app
    image on the official Python base, and the others pulled, with progress; ``"auto"``: one of
    the two (``choose``), printed with its reason.
    """
    choice = choose(selection)
    if console is not None:
        console.print(f"images: {choice.selection} ({choice.reason})", highlight=False)
    images = image_set(choice)
    overridden = _overrides()
    wanted = [
        name
        for name, spec in SPECS.items()
        if spec.field and spec.image_set == choice.selection and spec.field not in overridden
    ]
    builder = Builder(console=console)
    if wanted:
        results = builder.build(wanted)
        failed = [r for r in results if r.status == "failed"]
        if failed:
            raise ImageBuildError(failed[0].error or BuildStepError(failed[0].name, "?", ""))
    if choice.selection == "upstream":
        built = {getattr(images, SPECS[name].field or "") for name in wanted}
        refs = [getattr(images, f) for f in IMAGE_FIELDS]
        builder.pull_missing([ref for ref in refs if ref and ref not in built])
    return images


# --- the build --------------------------------------------------------------------------------


class BuildStepError(Exception):
    """A build step failed: which image, which step, and the tail of its output."""

    def __init__(self, image: str, step: str, tail: str) -> None:
        super().__init__(f"{image}: step '{step}' failed")
        self.image, self.step, self.tail = image, step, tail

    def report(self) -> str:
        return f"{self.args[0]}; last lines of its output:\n{self.tail}"


# A layer's last status in a pull's stream.
PULLED = ("Pull complete", "Already exists")


class ImagePullError(RuntimeError):
    def __init__(self, ref: str, reason: str) -> None:
        super().__init__(
            f"could not pull {ref}: {reason[:300]} (no registry here? --images=offline builds "
            "every image from package registries)"
        )
        self.ref = ref


class ImageBuildError(RuntimeError):
    def __init__(self, error: BuildStepError) -> None:
        super().__init__(error.report())
        self.error = error


@dataclass
class Result:
    name: str
    tag: str
    status: str  # built | reused | failed | skipped
    seconds: float = 0.0
    size: int | None = None
    own_size: int | None = None
    error: BuildStepError | None = None
    steps: dict[str, float] = dataclasses.field(default_factory=dict)


class _NullProgress:
    def update(self, text: str) -> None:
        pass

    def log(self, text: str) -> None:
        print(text, file=sys.stderr)


def patched_modules(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(module, version, directory) of each `module version => ../directory` in an ocb
    manifest's `replaces`: the modules the offline exporter builds from patched copies."""
    found = []
    for entry in manifest.get("replaces", []):
        match = re.fullmatch(r"(\S+) (v\S+) => \.\./([\w.-]+)", entry)
        if match is None:
            raise ValueError(
                f"builder.yaml: replaces entry {entry!r} is not 'module version => ../dir'"
            )
        found.append((match[1], match[2], match[3]))
    return found


class Builder:
    """Builds offline images in order, each only when its tag is missing (or with force)."""

    def __init__(
        self, *, force: bool = False, console: Any = None, cache: Path | None = None
    ) -> None:
        self.force = force
        self.console = console
        cached = cache or os.environ.get(CACHE_ENV)
        self.cache = Path(cached).expanduser() if cached else None
        self.tags = offline_tags()
        self.logs = BUILD_DIR / "logs"
        self._docker: Any = None
        self._progress: Any = _NullProgress()
        self._current: Result | None = None

    # -- docker ---------------------------------------------------------------------------------
    @property
    def docker(self) -> Any:
        if self._docker is None:
            import docker  # the SDK is a test dependency; only building needs it

            try:
                self._docker = docker.from_env(timeout=600)
                self._docker.ping()
            except Exception as error:
                raise BuildStepError(
                    "docker", "connect to the Docker engine", f"{type(error).__name__}: {error}"
                ) from None
        return self._docker

    def _image(self, tag: str) -> Any:
        import docker.errors

        try:
            return self.docker.images.get(tag)
        except docker.errors.ImageNotFound:
            return None

    def _remove_replaced(self, old: Any, tag: str) -> None:
        """After a forced rebuild, drop the image the tag pointed to if it is ours and untagged."""
        import docker.errors

        new = self._image(tag)
        if new is None or new.id == old.id or (old.labels or {}).get(LABEL) is None:
            return
        with contextlib.suppress(docker.errors.APIError):
            old.reload()
            if not old.tags:
                self.docker.images.remove(old.id)

    def _remove_dangling(self, name: str) -> None:
        """Drop the untagged images this image's builds leave (the app's install stage)."""
        import docker.errors

        for image in self.docker.images.list(
            filters={"dangling": True, "label": f"{LABEL}={name}"}
        ):
            with contextlib.suppress(docker.errors.APIError):  # in use: a build running now
                self.docker.images.remove(image.id)

    def prune(self) -> list[str]:
        """Remove this builder's images whose tag is no longer any image's current tag."""
        import docker.errors

        current = set(self.tags.values())
        removed = []
        for image in self.docker.images.list(filters={"label": LABEL}):
            for tag in image.tags:
                if tag.startswith(f"{REPOSITORY}/") and tag not in current:
                    try:
                        self.docker.images.remove(tag)
                        removed.append(tag)
                    except docker.errors.APIError as error:  # in use by a container
                        self._progress.log(f"kept {tag}: {error.explanation or error}")
        for name in ORDER:
            self._remove_dangling(name)
        return removed

    # -- pulls (the upstream set) -------------------------------------------------------------
    def pull_missing(self, refs: Sequence[str]) -> None:
        """Pull each image not present yet, with its layers' progress; a refused pull is an
        ImagePullError naming the image, not Docker's raw error."""
        missing = [ref for ref in refs if self._image(ref) is None]
        with self._progress_display():
            for ref in missing:
                self._pull(ref)

    def _pull(self, ref: str) -> None:
        import docker

        repository, _, tag = ref.rpartition(":") if ":" in ref.split("/")[-1] else (ref, "", "")
        began = time.monotonic()
        layers: dict[str, str] = {}
        if hasattr(self._progress, "start"):
            self._progress.start(ref.split("/")[-1])
        try:
            for event in self.docker.api.pull(
                repository, tag=tag or "latest", stream=True, decode=True
            ):
                if "error" in event:
                    raise ImagePullError(ref, str(event["error"]))
                if "id" in event and "status" in event:
                    layers[event["id"]] = event["status"]
                    done = sum(status in PULLED for status in layers.values())
                    self._step(f"pulling {ref}: {done}/{len(layers)} layers")
        except docker.errors.APIError as error:
            raise ImagePullError(ref, str(error.explanation or error)) from None
        if hasattr(self._progress, "finish"):
            self._progress.finish("pulled")
        self._progress.log(f"pulled {ref}: {len(layers)} layers in {time.monotonic() - began:.0f}s")

    # -- the plan -------------------------------------------------------------------------------
    def plan(self, names: Sequence[str]) -> list[str]:
        """The requested images in build order, with each missing parent put before its child."""
        unknown = [n for n in names if n not in SPECS]
        if unknown:
            raise ValueError(f"unknown image(s) {unknown}; known: {ORDER}")
        chosen = set(names)
        for name in list(names):
            parent = SPECS[name].parent
            while parent:
                if parent not in chosen and self._image(self.tags[parent]) is not None:
                    break  # a parent is rebuilt only when missing, or when asked for
                chosen.add(parent)
                parent = SPECS[parent].parent
        return [n for n in ORDER if n in chosen]

    def build(self, names: Sequence[str] | None = None) -> list[Result]:
        names = list(names or OFFLINE)
        self.logs.mkdir(parents=True, exist_ok=True)
        try:
            plan = self.plan(names)
        except BuildStepError as error:
            return [Result(n, self.tags.get(n, "?"), "failed", error=error) for n in names]
        results: list[Result] = []
        # The archive holds the offline set: an upstream build (app-python) never reads it.
        self.load_cached([name for name in plan if name in OFFLINE])
        with self._progress_display():
            for name in plan:
                failed_parent = next(
                    (r for r in results if r.name == SPECS[name].parent and r.status == "failed"),
                    None,
                )
                if failed_parent:
                    results.append(Result(name, self.tags[name], "skipped"))
                    continue
                results.append(self._build_one(name))
        if not any(r.status == "failed" for r in results):
            self.save_cached()
        return results

    # -- progress -------------------------------------------------------------------------------
    class _RichProgress:
        def __init__(self, progress: Any) -> None:
            self.progress = progress
            self.task: Any = None

        def start(self, name: str) -> None:
            self.task = self.progress.add_task("", image=name, total=None)

        def update(self, text: str) -> None:
            if self.task is not None:
                self.progress.update(self.task, description=text)

        def finish(self, text: str) -> None:
            if self.task is not None:
                self.progress.update(self.task, description=text, completed=1, total=1)
                self.progress.stop_task(self.task)

        def log(self, text: str) -> None:
            self.progress.console.print(text, highlight=False)

    def _progress_display(self) -> Any:
        builder = self

        class _Context:
            def __enter__(self) -> None:
                try:
                    from rich.console import Console
                    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
                except ImportError:
                    builder._progress = _NullProgress()
                    return
                console = builder.console or Console(stderr=True)
                self.progress = Progress(
                    SpinnerColumn(),
                    TextColumn("[bold]{task.fields[image]:<15}"),
                    TimeElapsedColumn(),
                    TextColumn("{task.description}"),
                    console=console,
                    transient=False,
                )
                self.progress.start()
                builder._progress = Builder._RichProgress(self.progress)

            def __exit__(self, *exc: object) -> None:
                if hasattr(self, "progress"):
                    self.progress.stop()
                builder._progress = _NullProgress()

        return _Context()

    def _step(self, text: str) -> None:
        self._progress.update(text)

    # -- one image ------------------------------------------------------------------------------
    def _build_one(self, name: str) -> Result:
        tag = self.tags[name]
        result = Result(name, tag, "failed")
        self._current = result
        if hasattr(self._progress, "start"):
            self._progress.start(name)
        started = time.monotonic()
        try:
            existing = self._image(tag)
            if existing is not None and not self.force:
                result.status = "reused"
                self._progress.log(f"{name}: {tag} present, reused")
            else:
                (self.logs / f"{name}.log").write_text(f"# build of {tag}\n")
                getattr(self, "_build_" + name.replace("-", "_"))(tag)
                result.status = "built"
                # The context holds copies (jars, binaries, wheels): rebuilt on every build.
                shutil.rmtree(BUILD_DIR / name / "context", ignore_errors=True)
                if existing is not None:
                    self._remove_replaced(existing, tag)
                self._remove_dangling(name)
            image = self._image(tag)
            if image is None:
                raise BuildStepError(name, "check the image", f"{tag} missing after its build")
            result.size = int(image.attrs.get("Size") or 0)
            parent = SPECS[name].parent
            parent_image = self._image(self.tags[parent]) if parent else None
            if parent_image is not None:
                result.own_size = result.size - int(parent_image.attrs.get("Size") or 0)
        except BuildStepError as error:
            result.status, result.error = "failed", error
            self._progress.log(f"[red]{name}: step '{error.step}' failed[/red]")
        result.seconds = time.monotonic() - started
        if hasattr(self._progress, "finish"):
            self._progress.finish(
                {"built": "built", "reused": "reused", "failed": "[red]failed[/red]"}[result.status]
            )
        if result.status == "built":
            steps = ", ".join(f"{k} {v:.0f}s" for k, v in result.steps.items())
            self._progress.log(f"{name}: built {tag} in {result.seconds:.0f}s ({steps})")
        return result

    # -- the archive cache (CRM_CERT_IMAGE_CACHE) -----------------------------------------------
    def archive(self) -> Path | None:
        """Where the cache keeps the offline set at its current inputs (None: no cache)."""
        if self.cache is None:
            return None
        key = hashlib.sha256(" ".join(self.tags[n] for n in OFFLINE).encode()).hexdigest()
        return self.cache / f"offline-{key[:HASH_LENGTH]}.tar"

    def load_cached(self, names: Sequence[str]) -> bool:
        """Load the archive when one of `names` is missing and the archive is there."""
        archive = self.archive()
        if archive is None or not archive.is_file() or self.force:
            return False
        if all(self._image(self.tags[n]) is not None for n in names):
            return False
        began = time.monotonic()
        self._progress.log(f"loading the offline images from {archive}")
        loaded = subprocess.run(
            ["docker", "load", "--quiet", "--input", str(archive)],
            capture_output=True,
            text=True,
            check=False,
        )
        if loaded.returncode != 0:  # a damaged archive: build instead, and replace it
            self._progress.log(f"{archive} not loaded ({loaded.stderr.strip()[:300]}); building")
            archive.unlink(missing_ok=True)
            return False
        self._progress.log(f"loaded {archive.name} in {time.monotonic() - began:.0f}s")
        return True

    def save_cached(self) -> Path | None:
        """Save the whole offline set, when present, unless its archive is there already; drop
        the archives of older inputs."""
        archive = self.archive()
        if archive is None or archive.is_file():
            return None
        if any(self._image(self.tags[n]) is None for n in OFFLINE):
            return None  # a partial set is not worth an archive
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_suffix(".partial")
        began = time.monotonic()
        tags = [self.tags[n] for n in OFFLINE]
        subprocess.run(["docker", "save", "--output", str(partial), *tags], check=True)
        partial.replace(archive)  # a killed save leaves no archive that looks whole
        older = re.compile(rf"offline-[0-9a-f]{{{HASH_LENGTH}}}\.tar")
        for old in archive.parent.iterdir():
            if old != archive and older.fullmatch(old.name):
                old.unlink()
        self._progress.log(f"saved {archive} in {time.monotonic() - began:.0f}s")
        return archive

    # -- the engines' binaries, out of their images -----------------------------------------------
    def copy_engine(self, release: engines.Release, directory: Path) -> str | None:
        """Copy the release's binaries out of its offline image into `directory`, loading the
        archive first when the image is missing: the image's tag, or None when it is not here
        (harness/engines.py decides whether they can stand for a host build)."""
        tag = self.tags[release.name]
        if self._image(tag) is None and not (self.load_cached(OFFLINE) and self._image(tag)):
            return None
        container = self.docker.containers.create(tag)  # never started: only read
        try:
            for command in release.commands:
                chunks, _ = container.get_archive(f"/bin/{command}")
                with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
                    archive.extractall(directory, filter="data")
        finally:
            container.remove()
        return tag

    # -- helpers --------------------------------------------------------------------------------
    def _log_path(self) -> Path:
        assert self._current is not None
        return self.logs / f"{self._current.name}.log"

    def _timed(self, step: str) -> Any:
        builder = self

        class _Timer:
            def __enter__(self) -> None:
                builder._step(step)
                self.started = time.monotonic()

            def __exit__(self, *exc: object) -> None:
                assert builder._current is not None
                builder._current.steps[step] = time.monotonic() - self.started

        return _Timer()

    def _run(
        self,
        step: str,
        command: Sequence[str],
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Run a host command, its output appended to the image's log; fail with its tail."""
        assert self._current is not None
        log = self._log_path()
        with self._timed(step), log.open("a") as out:
            try:
                code, tail = engines.run_to_log(command, out, cwd=cwd, env=env)
            except OSError as error:
                raise BuildStepError(self._current.name, step, str(error)) from None
        if code != 0:
            raise BuildStepError(
                self._current.name, step, "\n".join(tail) + f"\n(exit {code}; full log: {log})"
            )

    def _require(self, step: str, tool: str, hint: str) -> str:
        path = shutil.which(tool)
        if path is None:
            assert self._current is not None
            raise BuildStepError(self._current.name, step, f"'{tool}' not found on PATH: {hint}")
        return path

    def _context(self) -> Path:
        """A fresh build context: stack/images/<name>/ copied to .build/images/<name>/context/."""
        assert self._current is not None
        name = self._current.name
        context = BUILD_DIR / name / "context"
        if context.exists():
            shutil.rmtree(context)
        shutil.copytree(IMAGES_DIR / name, context, ignore=shutil.ignore_patterns("__pycache__"))
        return context

    def _docker_build(
        self, tag: str, context: Path, parent: str | None, args: dict[str, str] | None = None
    ) -> None:
        """`docker build` through the SDK (classic builder: pulls only a FROM image that is
        missing), output to the log."""
        assert self._current is not None
        name = self._current.name
        step = "docker build"
        tail: deque[str] = deque(maxlen=25)
        buildargs = ({"BASE": self.tags[parent]} if parent else {}) | (args or {})
        labels = {LABEL: name, INPUTS_LABEL: tag.rsplit(":", 1)[1]}
        with self._timed(step), self._log_path().open("a") as out:
            out.write(f"\n$ docker build -t {tag} {context} (buildargs {buildargs})\n")
            try:
                stream = self.docker.api.build(
                    path=str(context),
                    tag=tag,
                    buildargs=buildargs,
                    labels=labels,
                    rm=True,
                    forcerm=True,
                    pull=False,
                    nocache=self.force,
                    decode=True,
                )
                for chunk in stream:
                    text = chunk.get("stream") or chunk.get("status") or ""
                    if text:
                        out.write(text)
                        for line in text.splitlines():
                            if line.strip():
                                tail.append(line.rstrip())
                            if line.startswith("Step "):
                                self._step(f"docker build: {line.strip()[:70]}")
                    if "error" in chunk:
                        detail = chunk.get("errorDetail", {}).get("message") or chunk["error"]
                        out.write(f"ERROR: {detail}\n")
                        tail.append(str(detail))
                        raise BuildStepError(
                            name, step, "\n".join(tail) + f"\n(full log: {self._log_path()})"
                        )
            except BuildStepError:
                raise
            except Exception as error:
                raise BuildStepError(name, step, f"{type(error).__name__}: {error}") from None

    # -- base -----------------------------------------------------------------------------------
    def _build_base(self, tag: str) -> None:
        step = "debootstrap"
        if os.geteuid() != 0:
            raise BuildStepError(
                "base", step, "debootstrap needs root (run as root, or use the upstream images)"
            )
        debootstrap = self._require(step, "debootstrap", "apt-get install debootstrap")
        packages = [
            line.split("#", 1)[0].strip()
            for line in (IMAGES_DIR / "base" / "packages.txt").read_text().splitlines()
        ]
        packages = [p for p in packages if p]
        work = BUILD_DIR / "base"
        rootfs = work / "rootfs"
        cache = work / "debs"
        cache.mkdir(parents=True, exist_ok=True)
        if rootfs.exists():
            shutil.rmtree(rootfs)
        self._run(
            step,
            [
                debootstrap,
                "--variant=minbase",
                f"--include={','.join(packages)}",
                f"--cache-dir={cache.resolve()}",
                DEBIAN_SUITE,
                str(rootfs),
                *([DEBIAN_MIRROR] if DEBIAN_MIRROR else []),
            ],
        )
        with self._timed("clean rootfs"):
            _clean_rootfs(rootfs)
        step = "docker import"
        changes = [f"ENV {k}={v}" for k, v in BASE_ENV.items()]
        changes += [f"LABEL {LABEL}=base {INPUTS_LABEL}={tag.rsplit(':', 1)[1]}", 'CMD ["bash"]']
        with self._timed(step):
            self._pipe_import(rootfs, tag, changes)
        shutil.rmtree(rootfs)

    def _pipe_import(self, rootfs: Path, tag: str, changes: list[str]) -> None:
        """tar the rootfs straight into `docker import` (no 500 MB temp file)."""
        self._require("docker import", "docker", "the docker CLI is needed for docker import")
        command = ["docker", "import"]
        for change in changes:
            command += ["--change", change]
        command += ["-", tag]
        log = self._log_path()
        with log.open("a") as out:
            out.write(f"\n$ tar -C {rootfs} -c . | {' '.join(command)}\n")
            out.flush()
            tar = subprocess.Popen(
                ["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", "-", "."],
                stdout=subprocess.PIPE,
                stderr=out,
            )
            result = subprocess.run(
                command, stdin=tar.stdout, capture_output=True, text=True, check=False
            )
            assert tar.stdout is not None
            tar.stdout.close()
            tar_code = tar.wait()
            out.write(result.stdout + result.stderr)
        if tar_code != 0 or result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise BuildStepError(
                "base",
                "docker import",
                f"{tail}\n(tar exit {tar_code}, import exit {result.returncode}; full log: {log})",
            )

    # -- kafka ----------------------------------------------------------------------------------
    def _build_kafka(self, tag: str) -> None:
        step = "mvn dependency:copy-dependencies"
        mvn = self._require(step, "mvn", "install Maven (apt-get install maven)")
        context = self._context()
        self._run(
            step,
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(context / "pom.xml"),
                "dependency:copy-dependencies",
                "-DincludeScope=runtime",
                f"-DoutputDirectory={context / 'libs'}",
            ],
        )
        self._docker_build(tag, context, "base")

    # -- kafka-exporter -------------------------------------------------------------------------
    def _go_env(self) -> dict[str, str]:
        return {"CGO_ENABLED": "0", "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local"}

    def _build_kafka_exporter(self, tag: str) -> None:
        step = "go install builder"
        self._require(step, "go", "install Go (see .ci/run)")
        context = self._context()
        work = BUILD_DIR / "kafka-exporter"
        tools = work / "bin"
        builder = tools / f"builder-{OTELCOL_BUILDER.rsplit('@', 1)[1]}"
        if not builder.exists() or self.force:
            tools.mkdir(parents=True, exist_ok=True)
            self._run(
                step,
                ["go", "install", OTELCOL_BUILDER],
                env={**self._go_env(), "GOBIN": str(tools)},
            )
            (tools / "builder").rename(builder)
        # The collector binary is cached by the hash of its manifest, its patch and the Go version.
        key = hashlib.sha256(
            (context / "builder.yaml").read_bytes()
            + b"".join(patch.read_bytes() for patch in sorted(context.glob("*.patch")))
            + engines.go_version().encode()
        ).hexdigest()[:HASH_LENGTH]
        binary = work / f"otelcol-kafka-{key}"
        if not binary.exists() or self.force:
            gobuild = work / "gobuild"
            if gobuild.exists():
                shutil.rmtree(gobuild)
            gobuild.mkdir(parents=True)
            shutil.copy(context / "builder.yaml", gobuild / "builder.yaml")
            self._patched_modules(context, gobuild)
            self._run(
                "build the collector (ocb)",
                [str(builder), "--config", "builder.yaml"],
                cwd=gobuild,
                env={**self._go_env(), "GONOSUMDB": OTEL_CONTRIB},
            )
            shutil.move(gobuild / "dist" / "otelcol-kafka", binary)
            shutil.rmtree(gobuild)  # generated Go sources: never kept, never committed
        shutil.copy(binary, context / "otelcol-kafka")
        self._docker_build(tag, context, "base")

    def _patched_modules(self, context: Path, gobuild: Path) -> None:
        """Each module builder.yaml `replaces` (`module version => ../dir`), at that version,
        copied to gobuild/dir and patched with dir.patch from the image's directory."""
        assert self._current is not None
        manifest = yaml.safe_load((context / "builder.yaml").read_text())
        patched = patched_modules(manifest)
        if patched:
            patch = self._require(
                "patch", "patch", "install Debian's patch (scripts/ensure-build-tools.sh)"
            )
        for module, version, directory in patched:
            with self._timed(f"go mod download {directory}"):
                found = subprocess.run(
                    ["go", "mod", "download", "-json", f"{module}@{version}"],
                    capture_output=True,
                    text=True,
                    env={**os.environ, **self._go_env(), "GONOSUMDB": OTEL_CONTRIB},
                )
            if found.returncode != 0:
                raise BuildStepError(
                    self._current.name, "go mod download", found.stdout + found.stderr
                )
            copy = gobuild / directory
            shutil.copytree(json.loads(found.stdout)["Dir"], copy)
            for path in [copy, *copy.rglob("*")]:  # the module cache is read-only
                path.chmod(path.stat().st_mode | stat.S_IWUSR)
            self._run(
                f"patch {directory}",
                [
                    patch,
                    "-p1",
                    "--batch",
                    "--forward",
                    "-d",
                    str(copy),
                    "-i",
                    str(context / f"{directory}.patch"),
                ],
            )

    # -- prometheus, alertmanager ---------------------------------------------------------------
    def _build_prometheus(self, tag: str) -> None:
        self._build_engine(tag, engines.PROMETHEUS)

    def _build_alertmanager(self, tag: str) -> None:
        self._build_engine(tag, engines.ALERTMANAGER)

    def _build_engine(self, tag: str, release: engines.Release) -> None:
        context = self._context()
        binaries = self._engine_binaries(release)
        for command in release.commands:
            shutil.copy(binaries / command, context / command)
        self._docker_build(tag, context, "base")

    def _engine_binaries(self, release: engines.Release) -> Path:
        """The release's binaries, the same builds as the unit tier's promtool and amtool (Go is
        needed only when they are not built yet)."""
        assert self._current is not None
        try:
            return engines.ensure(release, run=self._run)
        except engines.EngineBuildError as error:
            raise BuildStepError(self._current.name, "go build", str(error)) from None

    # -- toxiproxy ------------------------------------------------------------------------------
    def _build_toxiproxy(self, tag: str) -> None:
        step = "go install toxiproxy"
        self._require(step, "go", "install Go (see .ci/run)")
        context = self._context()
        work = BUILD_DIR / "toxiproxy"
        key = f"{TOXIPROXY_VERSION}-{engines.go_version()}"
        binaries = work / f"bin-{key}"
        if not (binaries / "cli").exists() or self.force:
            if binaries.exists():
                shutil.rmtree(binaries)
            binaries.mkdir(parents=True)
            version = TOXIPROXY_VERSION.lstrip("v")
            ldflags = f"-s -w -X {TOXIPROXY_MODULE}.Version={version}"
            self._run(
                step,
                [
                    "go",
                    "install",
                    f"-ldflags={ldflags}",
                    f"{TOXIPROXY_MODULE}/cmd/server@{TOXIPROXY_VERSION}",
                    f"{TOXIPROXY_MODULE}/cmd/cli@{TOXIPROXY_VERSION}",
                ],
                env={**self._go_env(), "GOBIN": str(binaries)},
            )
        shutil.copy(binaries / "server", context / "toxiproxy-server")
        shutil.copy(binaries / "cli", context / "toxiproxy-cli")
        self._docker_build(tag, context, None)

    # -- app ------------------------------------------------------------------------------------
    def _build_app(self, tag: str) -> None:
        context = self._context()
        self._app_wheels(context / "wheels")
        # amtool for the runbooks' `sh stack` blocks, which run from this image on the stack's
        # network: the current engine's, the one the routes are proven with.
        shutil.copy(self._engine_binaries(engines.ALERTMANAGER) / "amtool", context / "amtool")
        self._docker_build(tag, context, "base")

    def _build_app_python(self, tag: str) -> None:
        context = self._context()
        self._app_wheels(context / "wheels")
        args = {"PYTHON_IMAGE": PYTHON_IMAGE, "ALERTMANAGER_IMAGE": UPSTREAM_ALERTMANAGER}
        self._docker_build(tag, context, None, args)

    def _app_wheels(self, wheels: Path) -> None:
        """The app and its dependencies as wheels, built on the host from the app's packages."""
        source = BUILD_DIR / "app-source"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        (source / "pyproject.toml").write_text(APP_PYPROJECT)
        for package in APP_PACKAGES:
            shutil.copytree(
                REPO_ROOT / package,
                source / package,
                ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
            )
        wheels.mkdir()
        self._run(
            "pip wheel",
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--disable-pip-version-check",
                "--wheel-dir",
                str(wheels),
                str(source),
            ],
            env={"PIP_NO_INPUT": "1"},
        )


def _clean_rootfs(rootfs: Path) -> None:
    """Drop what an image does not need: package caches and lists, docs (not licences), logs."""

    def remove(path: Path) -> None:
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            shutil.rmtree(path)

    def clear(directory: str, keep: Callable[[Path], bool] = lambda _p: False) -> None:
        root = rootfs / directory
        if root.is_dir():
            for child in root.iterdir():
                if not keep(child):
                    remove(child)

    clear("var/cache/apt/archives", keep=lambda p: p.name in ("partial", "lock"))
    for pkgcache in (rootfs / "var/cache/apt").glob("*.bin"):
        pkgcache.unlink()
    clear("var/lib/apt/lists", keep=lambda p: p.name in ("partial", "lock"))
    clear("var/cache/debconf", keep=lambda p: p.name.endswith(".dat"))
    for doc in (rootfs / "usr/share/doc").glob("*"):
        if doc.is_dir() and not doc.is_symlink():
            for item in doc.iterdir():
                if item.name != "copyright":
                    remove(item)
    for directory in ("usr/share/man", "usr/share/info", "usr/share/lintian", "usr/share/linda"):
        clear(directory)
    clear("usr/share/locale", keep=lambda p: p.name in ("locale.alias",))
    for log in (rootfs / "var/log").rglob("*"):
        if log.is_file():
            log.write_bytes(b"")
    for name in ("etc/resolv.conf", "etc/hostname"):
        path = rootfs / name
        if path.is_file() and not path.is_symlink():
            path.write_text("")
    remove(rootfs / "debootstrap")


# --- the command line -------------------------------------------------------------------------


def _human(size: int | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit in ("B", "kB") else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _print_table(results: list[Result], console: Any) -> None:
    from rich.table import Table

    table = Table(title="crm-cert offline images")
    for column in ("image", "tag", "size", "own layers", "status", "seconds"):
        table.add_column(
            column, justify="right" if column in ("size", "own layers", "seconds") else "left"
        )
    for r in results:
        style = {"failed": "red", "skipped": "yellow", "built": "green"}.get(r.status, "")
        table.add_row(
            r.name,
            r.tag,
            _human(r.size),
            _human(r.own_size),
            f"[{style}]{r.status}[/{style}]" if style else r.status,
            f"{r.seconds:.1f}",
        )
    console.print(table)


def _names(values: Sequence[str] | None) -> list[str] | None:
    if not values:
        return None
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    return [n.replace("_", "-") for n in names]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.images",
        description="Build the stack's images offline (no image pull), each tagged by its inputs.",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the tag is present")
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help=f"build only these images (repeatable or comma-separated): {', '.join(ORDER)}",
    )
    parser.add_argument(
        "--tags", action="store_true", help="print the offline tags (no build) and exit"
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="keep the offline set as one docker-save archive in DIR: loaded when an image is "
        f"missing, saved when the whole set is present (env: {CACHE_ENV})",
    )
    parser.add_argument(
        "--prune",
        action="store_true",
        help="then remove crm-cert/* images of older inputs (never images built elsewhere)",
    )
    args = parser.parse_args(argv)

    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        console = Console(stderr=True, width=120)  # logs and CI: keep the table's tags whole
    if args.tags:
        for name, tag in offline_tags().items():
            print(f"{name}\t{tag}")
        return 0
    names = _names(args.only)
    unknown = [n for n in names or [] if n not in SPECS]
    if unknown:
        parser.error(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(ORDER)}")
    builder = Builder(force=args.force, console=console, cache=args.cache)
    try:
        results = builder.build(names)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        return 130
    _print_table(results, console)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        for r in failed:
            assert r.error is not None
            console.print(r.error.report(), style="red", markup=False, highlight=False)
        return 1
    built = [r for r in results if r.status == "built"]
    if not built:
        console.print("every image present: nothing built")
    if args.prune:
        removed = builder.prune()
        console.print(
            f"pruned {len(removed)} image(s) of older inputs: {', '.join(removed) or '-'}"
        )
    return 0


def iter_specs() -> Iterator[Spec]:
    """The offline images in build order (for tools and tests)."""
    for name in ORDER:
        yield SPECS[name]


if __name__ == "__main__":
    sys.exit(main())
