"""A fork server for the fast tier's pytest runs (run as a script, never imported by the harness).

A certify run of one unit test file spends most of its time before and after its tests: loading
pytest's plugins and, in the report, matplotlib (about 2.5 s of a 3.5 s run). This process
imports those third-party modules once, then forks one child per run. The child is what
`python -m pytest ARGS` would be in the scratch copy: its working directory first on sys.path,
the run's environment, its own output file, and a fresh import of every module of the project
(none is imported here: this script imports nothing of harness, probe, stack or tests).

Protocol: one JSON object per line on stdin, {"argv", "cwd", "env", "log", "timeout"}; one JSON
object per line on stdout, {"code"} (the run's exit status, or -9 after a timeout).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import time

# Third-party modules that read nothing of the project; testcontainers and docker are left to
# the run (the project's plugin sets their environment before importing them).
PRELOAD = (
    "pytest",
    "_pytest.pytester",
    "pluggy",
    "matplotlib",
    "matplotlib.pyplot",
    "numpy",
    "yaml",
    "jsonschema",
    "httpx",
    "flask",
    "werkzeug",
    "waitress",
    "rich.console",
    "prometheus_client",
    "tenacity",
    # pytest's entry-point plugins, loaded by every run (anyio's asyncio backend alone ~0.5 s)
    "anyio",
    "anyio.pytest_plugin",
    "anyio._backends._asyncio",
    "pytest_timeout",
    "pytest_httpserver",
    "pytest_httpserver.pytest_plugin",
    "promql_parser",
    "docker",
)


def _child(request: dict[str, object]) -> None:
    log = os.open(str(request["log"]), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    cwd = str(request["cwd"])
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update({str(k): str(v) for k, v in dict(request["env"]).items()})  # type: ignore[call-overload]
    sys.path.insert(0, cwd)  # what `python -m` does
    sys.argv = ["pytest", *map(str, request["argv"])]  # type: ignore[call-overload]
    _libyaml()
    import pytest

    code = 3
    try:
        code = int(pytest.console_main())
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _libyaml() -> None:
    """yaml.safe_load with libyaml's loader, when present: it builds the same Python objects as
    the pure-Python safe loader, about ten times faster (the tests and the contract parse the
    stack's YAML files several times per run)."""
    try:
        import yaml
    except ImportError:
        return
    loader = getattr(yaml, "CSafeLoader", None)
    if loader is None:
        return

    def safe_load(stream: object) -> object:
        return yaml.load(stream, Loader=loader)  # type: ignore[arg-type]

    yaml.safe_load = safe_load


def main() -> None:
    sys.path.pop(0)  # this script's directory is not the scratch copy
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        deadline = time.monotonic() + float(request.get("timeout", 300))
        status = None
        while status is None:
            done, raw = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(raw)
            elif time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                status = -9
            else:
                time.sleep(0.02)
        print(json.dumps({"code": status}), flush=True)


if __name__ == "__main__":
    main()
