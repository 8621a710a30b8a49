"""ci/: the release gates to copy (GitHub Actions, GitLab CI/CD), and README's exit codes.

Validation, offline: each template against the JSON schema check-jsonschema vendors
(github-workflows, gitlab-ci). Then what makes each a gate: it runs README's main command, that
command's exit status is the job's (nothing swallows it), and reports/ with the JUnit XML that
noxfile.py writes is published whatever the outcome. The values compared are read from README.md,
noxfile.py, harness/settings.py and pyproject.toml, never retyped here. No CI system needed.
"""

from __future__ import annotations

import ast
import importlib.resources
import json
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml
from packaging.specifiers import SpecifierSet

from harness import report
from harness.settings import IMAGE_SETS, OPTIONS
from tests.tools import REPO

pytestmark = pytest.mark.claim("harness.self_test")

CI = REPO / "ci"
GITHUB = CI / "github-actions.yml"
GITLAB = CI / "gitlab-ci.yml"
SCHEMAS = {GITHUB: "github-workflows.json", GITLAB: "gitlab-ci.json"}
README = REPO / "README.md"
NOXFILE = REPO / "noxfile.py"
ENSURE_NOX = REPO / "scripts" / "ensure-nox.sh"  # bootstrap.sh installs nox through it
ENSURE_BUILD_TOOLS = REPO / "scripts" / "ensure-build-tools.sh"  # Go, Maven, a JDK
GATE_SECTION = "Gating a release"


class _Yaml12(yaml.SafeLoader):
    """YAML 1.2 booleans, as GitHub and GitLab read them: `on:` is a key, not True."""


_Yaml12.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(path.read_text(), Loader=_Yaml12)
    return document


def vendored_schema(name: str) -> dict[str, Any]:
    vendored = importlib.resources.files("check_jsonschema.builtin_schemas.vendor")
    schema: dict[str, Any] = json.loads(vendored.joinpath(name).read_text())
    return schema


# --- what the other files say ----------------------------------------------------------------


def readme_main_command() -> str:
    """The command of README's Commands table that is marked as the main job."""
    rows = [line for line in README.read_text().splitlines() if "**the main job**" in line]
    assert len(rows) == 1, rows
    command = re.match(r"^\| `(?P<command>[^`]+)` \|", rows[0])
    assert command, rows[0]
    return command["command"]


def certify_arguments() -> list[str]:
    """The arguments noxfile.py's certify session gives pytest for the single topology, the
    gate's (f-strings evaluated against the module's string constants and that topology's
    locals; *session.posargs left out)."""
    module = ast.parse(NOXFILE.read_text())
    constants = {
        target.id: node.value.value
        for node in module.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    constants |= {"chosen": "single", "reports": constants["REPORTS"]}

    def value(node: ast.expr) -> str:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.JoinedStr):
            return "".join(value(part) for part in node.values)
        if isinstance(node, ast.FormattedValue) and isinstance(node.value, ast.Name):
            return constants[node.value.id]
        raise AssertionError(f"noxfile.py: cannot read {ast.dump(node)}")

    # `certify` runs `certify_topology(session, <topology>)`, which runs the command.
    (session,) = [
        node
        for node in module.body
        if isinstance(node, ast.FunctionDef) and node.name == "certify_topology"
    ]
    # The one command: `certification(session, "pytest", ...)` (noxfile.py's helper).
    runs = [
        node
        for node in ast.walk(session)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "certification"
    ]
    assert len(runs) == 1, "the certify session runs one command"
    return [value(arg) for arg in runs[0].args[1:] if not isinstance(arg, ast.Starred)]


def certify_flag(name: str) -> str:
    values = [a.split("=", 1)[1] for a in certify_arguments() if a.startswith(f"{name}=")]
    assert len(values) == 1, f"noxfile.py's certify session gives {name} {len(values)} times"
    return values[0]


def junit_path() -> str:
    return certify_flag("--junitxml")


def reports_dir() -> str:
    return certify_flag("--reports-dir")


def within(path: str, directory: str) -> bool:
    return PurePosixPath(directory) in PurePosixPath(path).parents


def github_job() -> dict[str, Any]:
    jobs = load(GITHUB)["jobs"]
    assert list(jobs) == ["certify"]
    job: dict[str, Any] = jobs["certify"]
    return job


def github_steps(**match: str) -> list[dict[str, Any]]:
    return [
        step
        for step in github_job()["steps"]
        if all(str(step.get(key, "")).startswith(value) for key, value in match.items())
    ]


def gitlab_job() -> dict[str, Any]:
    job: dict[str, Any] = load(GITLAB)["certify"]
    return job


def script_lines(job: dict[str, Any]) -> list[str]:
    return [line for entry in job["script"] for line in str(entry).splitlines()]


# --- the files are valid ------------------------------------------------------------------------


@pytest.mark.parametrize("template", list(SCHEMAS), ids=lambda path: path.name)
def test_the_template_validates_against_its_vendored_schema(template: Path) -> None:
    schema = vendored_schema(SCHEMAS[template])
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    document = load(template)
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(document)
    ]
    assert not errors, "\n".join(errors)
    # The schema is strict enough to catch a misspelt key in the job.
    if template == GITHUB:
        job = github_job()
        broken = {**document, "jobs": {"certify": {**job, "timeout_minutes": 5}}}
    else:
        broken = {**document, "certify": {**gitlab_job(), "artefacts": {}}}
    assert not validator.is_valid(broken)


@pytest.mark.parametrize("template", list(SCHEMAS), ids=lambda path: path.name)
def test_the_header_says_how_to_copy_it_and_where_the_exit_codes_are(template: Path) -> None:
    lines = template.read_text().splitlines()
    comment = lines[: next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    assert len(comment) >= 10, "the file starts with a comment on how to use it"
    header = " ".join(line.lstrip("# ") for line in comment)
    assert f"`{readme_main_command()}`" in header
    destination = ".github/workflows/" if template == GITHUB else ".gitlab-ci.yml"
    assert destination in header
    assert f'section "{GATE_SECTION}"' in header
    assert f"## {GATE_SECTION}" in README.read_text().splitlines()


# --- the gate: the main command, its exit status is the job's ----------------------------------


def test_the_readme_main_command_is_the_certify_session() -> None:
    assert readme_main_command() == "nox -s certify"
    assert certify_arguments()[:1] == ["pytest"]


HA_COMMAND = "nox -s ha"  # then the HA topology: a release needs both verdicts


def test_both_templates_run_the_readme_main_command_once_as_it_is_then_the_ha_topology() -> None:
    command = readme_main_command()
    runs = [step["run"] for step in github_job()["steps"] if "run" in step]
    assert [run for run in runs if "nox" in run.split()] == [command, HA_COMMAND]
    gitlab = [line for line in script_lines(gitlab_job()) if "nox -s" in line]
    assert gitlab == [command, HA_COMMAND]
    sessions = {node.name for node in ast.parse(NOXFILE.read_text()).body if hasattr(node, "name")}
    assert "ha" in sessions


def test_nothing_swallows_the_exit_status_of_the_command() -> None:
    command = readme_main_command()
    job = github_job()
    assert "continue-on-error" not in job
    for gate in (command, HA_COMMAND):
        (step,) = github_steps(run=gate)
        # No `if:` (runs unless an earlier step failed) and not allowed to fail.
        assert set(step) <= {"name", "run", "env"}, step
        runs_before = [s["run"] for s in job["steps"][: job["steps"].index(step)] if "run" in s]
        assert not any("set +e" in run or "|| true" in run for run in runs_before)

    gitlab = gitlab_job()
    assert gitlab.get("allow_failure", False) is False
    assert not any("set +e" in line for line in script_lines(gitlab))
    # The two gates are the script's last lines: the job's status is theirs.
    assert script_lines(gitlab)[-2:] == [command, HA_COMMAND]


def test_the_github_steps_before_it_install_what_bootstrap_installs() -> None:
    (nox_spec,) = re.findall(r'NOX_REQUIREMENT="(nox[^"]*)"', ENSURE_NOX.read_text())
    assert github_steps(run="python -m pip install")[0]["run"].endswith(f'"{nox_spec}"')
    assert github_steps(run="sudo bash scripts/ensure-tools.sh")
    assert github_steps(run="sudo bash scripts/ensure-build-tools.sh")
    (go_version,) = re.findall(r"^GO_VERSION=(\S+)$", ENSURE_BUILD_TOOLS.read_text(), re.M)
    [setup_go] = github_steps(uses="actions/setup-go@v5")
    assert setup_go["with"]["go-version"] == go_version
    # GitLab's job runs bootstrap.sh itself.
    assert "bash scripts/bootstrap.sh" in script_lines(gitlab_job())


# --- reports/ and the JUnit XML are published whatever the outcome ----------------------------


def test_github_uploads_reports_and_the_junit_xml_even_when_the_gate_fails() -> None:
    (upload,) = github_steps(uses="actions/upload-artifact@")
    assert upload["if"] == "always()"
    assert PurePosixPath(upload["with"]["path"]) == PurePosixPath(reports_dir())
    assert within(junit_path(), upload["with"]["path"])
    (summary,) = [s for s in github_job()["steps"] if "GITHUB_STEP_SUMMARY" in s.get("run", "")]
    assert summary["if"] == "always()"
    assert f"{reports_dir()}/certification.md" in summary["run"]


def test_gitlab_keeps_reports_and_the_junit_xml_even_when_the_gate_fails() -> None:
    artifacts = gitlab_job()["artifacts"]
    assert artifacts["when"] == "always"
    assert [PurePosixPath(p) for p in artifacts["paths"]] == [PurePosixPath(reports_dir())]
    assert artifacts["reports"]["junit"] == junit_path()
    assert within(junit_path(), reports_dir())


# --- triggers, image sets, Python -------------------------------------------------------------


def test_github_runs_on_main_pull_requests_and_by_hand_on_a_docker_runner() -> None:
    workflow = load(GITHUB)
    assert workflow["on"]["push"] == {"branches": ["main"]}
    assert "pull_request" in workflow["on"]
    assert "workflow_dispatch" in workflow["on"]
    assert github_job()["runs-on"] == "ubuntu-latest"


def test_the_image_set_choices_are_the_harness_ones_auto_by_default() -> None:
    (images,) = [option for option in OPTIONS if option.flag == "--images"]
    assert images.default == "auto"
    dispatch = load(GITHUB)["on"]["workflow_dispatch"]["inputs"]["images"]
    assert tuple(dispatch["options"]) == IMAGE_SETS
    assert dispatch["default"] == images.default
    assert github_job()["env"][images.env] == (
        f"${{{{ inputs.images || vars.{images.env} || '{images.default}' }}}}"
    )
    variable = load(GITLAB)["variables"][images.env]
    assert tuple(variable["options"]) == IMAGE_SETS
    assert variable["value"] == images.default


def test_both_templates_keep_the_image_archives_where_the_harness_reads_them() -> None:
    from harness.images import CACHE_ENV

    directory = ".cache/crm-cert-images"
    assert github_job()["env"][CACHE_ENV] == "${{ github.workspace }}/" + directory
    (cache,) = github_steps(uses="actions/cache@")
    assert cache["with"]["path"] == directory
    assert "stack/images/**" in cache["with"]["key"]
    assert load(GITLAB)["variables"][CACHE_ENV] == "$CI_PROJECT_DIR/" + directory
    assert gitlab_job()["cache"]["paths"] == [directory + "/"]


def test_the_runners_python_is_one_the_project_supports() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    supported = SpecifierSet(pyproject["project"]["requires-python"])
    (setup,) = github_steps(uses="actions/setup-python@")
    assert setup["with"]["python-version"] in supported
    image = re.fullmatch(r"python:(?P<version>\d+\.\d+)-bookworm", gitlab_job()["image"])
    assert image and image["version"] in supported


# --- README's exit codes ----------------------------------------------------------------------


def gate_section() -> str:
    text = README.read_text()
    start = text.index(f"## {GATE_SECTION}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_exit_codes_name_the_codes_pytest_and_the_harness_give() -> None:
    rows = [
        [cell.strip() for cell in line.strip("|").split("|")]
        for line in gate_section().splitlines()
        if line.startswith("| ") and not line.startswith("| `nox")
    ]
    assert rows and all(len(row) == 3 for row in rows), "every row has three cells"
    named = {}
    for nox_code, pytest_code, _ in rows:
        code = re.fullmatch(r"(?P<code>\d+) `(?P<name>[A-Z_]+)`", pytest_code)
        if code:
            named[code["name"]] = int(code["code"])
            # nox turns any failing command into 1, but the certify session passes 6 through.
            passed_through = ("0", str(report.EXIT_STACK_FAILED))
            expected = code["code"] if code["code"] in passed_through else "1"
            assert nox_code == expected, pytest_code
    for name, value in named.items():
        known = pytest.ExitCode[name] if name in pytest.ExitCode.__members__ else None
        known = known if known is not None else getattr(report, name, None)
        assert known is not None, f"{name}: neither pytest.ExitCode nor harness.report"
        assert value == int(known), name
    assert named["OK"] == 0 and named["TESTS_FAILED"] == 1 and named["USAGE_ERROR"] == 4
