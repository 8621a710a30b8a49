"""The offline images' logic that runs without Docker: tags, selection, the Kafka image's
KAFKA_* -> server.properties rule, the exporter's command line and its /metrics filter."""

from __future__ import annotations

import dataclasses
import importlib.machinery
import importlib.util
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import pytest
import yaml

from harness import images, services
from harness.contract import load
from tests.tools import EXPORTER_METRICS

pytestmark = [pytest.mark.claim("deploy.images")]

IMAGES = Path(images.__file__).resolve().parent.parent / "stack" / "images"


def load_script(path: Path, name: str) -> ModuleType:
    """Import an extension-less script (the images' entry points) as a module."""
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def kafka_run() -> ModuleType:
    return load_script(IMAGES / "kafka" / "run", "kafka_run")


@pytest.fixture(scope="module")
def exporter() -> ModuleType:
    return load_script(IMAGES / "kafka-exporter" / "kafka_exporter", "kafka_exporter_wrapper")


# --- tags and selection ---------------------------------------------------------------------


def test_every_image_has_a_dockerfile_and_a_stable_input_tag() -> None:
    first, second = images.offline_tags(), images.offline_tags()
    assert first == second
    assert list(first) == images.ORDER
    assert {spec.image_set for spec in images.SPECS.values()} == {"offline", "upstream"}
    for name, tag in first.items():
        assert (IMAGES / name / "Dockerfile").is_file() or name == "base"
        assert re.fullmatch(rf"crm-cert/{name}:[0-9a-f]{{12}}", tag), tag


def test_a_parent_change_changes_the_child_tags(monkeypatch: pytest.MonkeyPatch) -> None:
    before = images.offline_tags()
    monkeypatch.setattr(images, "DEBIAN_SUITE", "trixie")
    monkeypatch.setitem(
        images.SPECS,
        "base",
        dataclasses.replace(images.SPECS["base"], pins=("trixie", images.DEBIAN_MIRROR)),
    )
    after = images.offline_tags()
    for name in ("base", "kafka", "kafka-exporter", "prometheus", "alertmanager", "app"):
        assert before[name] != after[name], name
    assert before["toxiproxy"] == after["toxiproxy"]  # FROM scratch: no parent


def test_upstream_defaults_and_the_app_image_is_always_local() -> None:
    up = images.UPSTREAM
    assert up.kafka == "apache/kafka:3.9.1"
    assert up.kafka_exporter.startswith("danielqsj/kafka-exporter:")
    assert up.app == images.offline_tags(["app-python"])["app-python"]
    assert up.app != images.offline_images().app  # no debootstrap base upstream
    assert images.offline_images().grafana is None


class FakeBuilder:
    """Records what ensure_images asks of the builder."""

    asked: ClassVar[list[tuple[str, list[str]]]] = []

    def __init__(self, **_: object) -> None:
        pass

    def build(self, names: list[str]) -> list[images.Result]:
        self.asked.append(("build", list(names)))
        return [images.Result(n, "t", "reused") for n in names]

    def pull_missing(self, refs: list[str]) -> None:
        self.asked.append(("pull", list(refs)))


def test_the_upstream_set_builds_only_the_python_based_app_and_pulls_the_rest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in images.IMAGE_FIELDS:
        monkeypatch.delenv(f"CRM_CERT_IMAGE_{name.upper()}", raising=False)
    FakeBuilder.asked = []
    monkeypatch.setattr(images, "Builder", FakeBuilder)
    chosen = images.ensure_images("upstream")
    up = images.UPSTREAM
    pulled = [up.kafka, up.kafka_exporter, up.prometheus, up.alertmanager, up.toxiproxy]
    assert FakeBuilder.asked == [("build", ["app-python"]), ("pull", [*pulled, up.grafana])]
    assert chosen.app == up.app
    FakeBuilder.asked = []
    images.ensure_images("offline")
    offline = [n for n in images.ORDER if n not in ("base", "app-python")]
    assert FakeBuilder.asked == [("build", offline)]  # nothing pulled offline


def test_the_python_based_app_image_is_built_without_debootstrap(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(images, "BUILD_DIR", tmp_path)
    builder = images.Builder()
    assert builder.plan(["app-python"]) == ["app-python"]  # no parent: no base image
    built: list[tuple[str, str | None, dict[str, str] | None]] = []
    monkeypatch.setattr(builder, "_build_base", lambda tag: pytest.fail("debootstrap ran"))
    monkeypatch.setattr(builder, "_app_wheels", lambda wheels: wheels.mkdir())
    monkeypatch.setattr(
        builder,
        "_docker_build",
        lambda tag, context, parent, args=None: built.append((tag, parent, args)),
    )
    builder._current = images.Result("app-python", builder.tags["app-python"], "failed")
    builder._build_app_python(builder.tags["app-python"])
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    assert built == [
        (
            builder.tags["app-python"],
            None,
            {
                "PYTHON_IMAGE": f"python:{version}-slim-bookworm",  # the wheels' interpreter
                "ALERTMANAGER_IMAGE": images.UPSTREAM.alertmanager,
            },
        )
    ]
    dockerfile = (IMAGES / "app-python" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM (\S+)", dockerfile, re.MULTILINE)
    assert froms == ["${ALERTMANAGER_IMAGE}", "${PYTHON_IMAGE}", "${PYTHON_IMAGE}"]
    assert "COPY --from=alertmanager /bin/amtool" in dockerfile


class FakeDocker:
    """The Docker SDK's images.get and api.pull, for the pull progress."""

    def __init__(self, present: set[str], events: list[dict[str, str]]) -> None:
        import docker

        self.present, self.events, self.pulled = present, events, []
        self.images = self
        self.api = self
        self.not_found = docker.errors.ImageNotFound

    def get(self, ref: str) -> object:
        if ref not in self.present:
            raise self.not_found(ref)
        return object()

    def pull(self, repository: str, tag: str, stream: bool, decode: bool) -> list[dict[str, str]]:
        self.pulled.append(f"{repository}:{tag}")
        return self.events


def test_pulls_show_their_layers_and_a_refused_pull_names_its_image(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    builder = images.Builder()
    events = [
        {"id": "a1", "status": "Downloading"},
        {"id": "b2", "status": "Already exists"},
        {"id": "a1", "status": "Pull complete"},
    ]
    builder._docker = FakeDocker({"present/image:1"}, events)
    builder.pull_missing(["present/image:1", "registry:5000/team/app:2"])
    assert builder._docker.pulled == ["registry:5000/team/app:2"]
    assert "pulled registry:5000/team/app:2: 2 layers" in capsys.readouterr().err
    builder._docker = FakeDocker(set(), [{"error": "toomanyrequests: rate limit"}])
    with pytest.raises(images.ImagePullError, match=r"could not pull prom/prometheus:v3.*rate"):
        builder.pull_missing(["prom/prometheus:v3"])


def chosen_set(image_set: images.ImageSet, selection: str) -> images.ImageSet:
    reason = "asked for (CRM_CERT_IMAGES or --images)"
    return dataclasses.replace(image_set, selection=selection, reason=reason)


def test_auto_is_upstream_only_when_every_registry_answers() -> None:
    asked: list[str] = []

    def answers(host: str) -> str | None:
        asked.append(host)
        return None

    assert images.choose("auto", answers) == images.Choice(
        "upstream", "auto: registry-1.docker.io and ghcr.io answer"
    )
    assert asked == list(images.REGISTRIES)

    def ghcr_silent(host: str) -> str | None:
        return "ConnectError: no route" if host == "ghcr.io" else None

    choice = images.choose("auto", ghcr_silent)
    assert choice.selection == "offline"
    assert choice.reason == "auto: ghcr.io does not answer (ConnectError: no route)"


def test_an_explicit_image_set_asks_no_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(host: str) -> str | None:
        raise AssertionError(f"asked {host}")

    monkeypatch.setenv("CRM_CERT_IMAGES", "upstream")
    assert images.choose(None, never).selection == "upstream"
    assert images.choose("offline", never).selection == "offline"
    monkeypatch.delenv("CRM_CERT_IMAGES")
    with pytest.raises(AssertionError, match=r"asked registry-1\.docker\.io"):
        images.choose(None, never)  # auto is the default


def test_a_registry_that_does_not_answer_is_named_with_the_error() -> None:
    problem = images.registry_problem("127.0.0.1:1")  # nothing listens on port 1
    assert problem is not None and problem.startswith("ConnectError"), problem


def test_selection_and_overrides_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CRM_CERT_IMAGES", raising=False)
    for name in images.IMAGE_FIELDS:
        monkeypatch.delenv(f"CRM_CERT_IMAGE_{name.upper()}", raising=False)
    monkeypatch.setenv("CRM_CERT_IMAGES", "offline")
    assert images.image_set() == chosen_set(images.offline_images(), "offline")
    upstream = images.image_set("upstream")  # an explicit choice wins
    assert upstream == chosen_set(images.UPSTREAM, "upstream")
    monkeypatch.setenv("CRM_CERT_IMAGE_KAFKA", "example/kafka:1")
    monkeypatch.setenv("CRM_CERT_IMAGE_GRAFANA", "")
    chosen = images.image_set("upstream")
    assert chosen.kafka == "example/kafka:1"
    assert chosen.grafana is None
    with pytest.raises(ValueError, match="selection"):
        images.image_set("nightly")


def test_ensure_images_builds_nothing_when_every_local_image_is_overridden(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in images.IMAGE_FIELDS:
        monkeypatch.setenv(f"CRM_CERT_IMAGE_{name.upper()}", f"example/{name}:1")

    def no_build(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("nothing should be built")

    monkeypatch.setattr(images.Builder, "build", no_build)
    assert images.ensure_images("offline").kafka == "example/kafka:1"


def test_base_package_list_has_what_the_images_need() -> None:
    text = (IMAGES / "base" / "packages.txt").read_text()
    packages = {line.split("#")[0].strip() for line in text.splitlines()} - {""}
    assert {
        "openjdk-17-jre-headless",
        "python3",
        "python3-venv",
        "ca-certificates",
        "tini",
        "curl",
    } <= packages
    # Prometheus and Alertmanager are the pinned Go builds (harness/engines.py), not Debian's.
    assert not {"prometheus", "prometheus-alertmanager"} & packages


def test_kafka_is_pinned_to_3_9() -> None:
    pom = (IMAGES / "kafka" / "pom.xml").read_text()
    assert re.search(r"<kafka.version>3\.9\.\d+</kafka.version>", pom)
    assert "Kafka 4.0 removed" in (IMAGES / "kafka" / "Dockerfile").read_text()


# --- the Kafka image's launcher ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "prop"),
    [
        ("KAFKA_NODE_ID", "node.id"),
        ("KAFKA_LISTENER_SECURITY_PROTOCOL_MAP", "listener.security.protocol.map"),
        ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "offsets.topic.replication.factor"),
        ("KAFKA_LOG_DIRS", "log.dirs"),
        ("KAFKA_LISTENER_NAME_INTERNAL_SASL__ENABLED", "listener.name.internal.sasl_enabled"),
        ("KAFKA_CONFLUENT___SUPPORT", "confluent-support"),
    ],
)
def test_kafka_property_names_follow_the_upstream_rule(
    kafka_run: ModuleType, variable: str, prop: str
) -> None:
    assert kafka_run.property_name(variable) == prop


def test_kafka_properties_skip_jvm_and_logging_variables(kafka_run: ModuleType) -> None:
    env = {
        "KAFKA_NODE_ID": "1",
        "KAFKA_HEAP_OPTS": "-Xmx1g",
        "KAFKA_OPTS": "-Dx=1",
        "KAFKA_LOG4J_LOGGERS": "kafka=WARN",
        "CLUSTER_ID": "abc",
        "PATH": "/bin",
    }
    assert kafka_run.server_properties(env) == {"node.id": "1"}


def test_kafka_defaults_fill_only_what_is_unset(kafka_run: ModuleType) -> None:
    env = {"KAFKA_LOG_DIRS": "/var/lib/kafka/data"}
    kafka_run.apply_defaults(env)
    assert env["KAFKA_LOG_DIRS"] == "/var/lib/kafka/data"
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["CLUSTER_ID"]


def test_kafka_listeners_default_to_the_advertised_ones_on_all_interfaces(
    kafka_run: ModuleType,
) -> None:
    env = {
        "KAFKA_PROCESS_ROLES": "broker",
        "CLUSTER_ID": "x",
        "KAFKA_ADVERTISED_LISTENERS": "INTERNAL://kafka:19092,EXTERNAL://127.0.0.1:9094",
    }
    kafka_run.configure(env)
    assert env["KAFKA_LISTENERS"] == "INTERNAL://0.0.0.0:19092,EXTERNAL://0.0.0.0:9094"


def test_kafka_storage_is_formatted_only_once(
    kafka_run: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []

    def fake_run(command: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(kafka_run.subprocess, "run", fake_run)
    env = {"CLUSTER_ID": "x"}
    props = {"log.dirs": str(tmp_path / "a")}
    kafka_run.format_storage(env, props)
    assert len(calls) == 1 and "kafka.tools.StorageTool" in calls[0]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "meta.properties").write_text("cluster.id=x\n")
    kafka_run.format_storage(env, props)
    assert len(calls) == 1  # a restarted container keeps its storage


# --- the exporter's command line and /metrics -------------------------------------------------


def test_exporter_takes_kafka_exporter_flags(exporter: ModuleType) -> None:
    options = exporter.parse_args(
        [
            "--kafka.server=kafka:19092",
            "--kafka.server",
            "kafka2:19092",
            "--kafka.version=3.9.1",
            "--web.listen-address=:9308",
            "--offset.show-all",
            "--concurrent.enable",
            "--topic.workers=10",
        ]
    )
    assert options.servers == ["kafka:19092", "kafka2:19092"]
    assert options.version == "3.9.1"
    assert options.listen == ":9308"
    assert exporter.split_address(options.listen) == ("", 9308)


@pytest.mark.parametrize(
    "flag",
    ["--sasl.enabled", "--tls.enabled", "--no-offset.show-all", "--zookeeper.server=z:2181", "--x"],
)
def test_exporter_refuses_what_it_cannot_do(exporter: ModuleType, flag: str) -> None:
    with pytest.raises(exporter.UsageError):
        exporter.parse_args([flag])


def test_exporter_renders_a_collector_config(
    exporter: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exporter, "TEMPLATE", IMAGES / "kafka-exporter" / "collector.yaml.tmpl")
    options = exporter.parse_args(["--kafka.server=kafka:19092", "--kafka.version=3.9.1"])
    text = exporter.render_config(options, 39308)
    assert 'brokers: ["kafka:19092"]' in text
    assert 'protocol_version: "3.9.1"' in text
    assert 'collection_interval: "1s"' in text
    assert 'endpoint: "127.0.0.1:39308"' in text
    assert "$" not in text.replace("${", "")
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load(text)
    assert config["receivers"]["kafkametrics"]["scrapers"] == ["brokers", "topics", "consumers"]


def test_exporter_renames_every_series_kafka_exporter_has() -> None:
    template = (IMAGES / "kafka-exporter" / "collector.yaml.tmpl").read_text()
    for name in sorted(EXPORTER_METRICS):
        assert f'set(metric.name, "{name}")' in template, name


def test_exporter_filter_leaves_kafka_exporter_labels_only(exporter: ModuleType) -> None:
    group, topic = load().group, load().topic
    collector_output = "\n".join(
        [
            "# HELP kafka_consumergroup_lag Current Approximate Lag",
            "# TYPE kafka_consumergroup_lag gauge",
            f'kafka_consumergroup_lag{{consumergroup="{group}",otel_scope_name="",'
            f'otel_scope_schema_url="",otel_scope_version="",partition="0",topic="{topic}"}} 5',
            'kafka_consumergroup_lag{consumergroup="a\\"b,c}",otel_scope_name="",partition="1",'
            f'topic="{topic}"}} 7',
            'kafka_brokers{otel_scope_name="",otel_scope_version=""} 1',
            "# HELP target_info Target metadata",
            "# TYPE target_info gauge",
            'target_info{kafka_cluster_alias="x"} 1',
            'kafka_topic_partitions{otel_scope_name="",topic="__consumer_offsets"} 50',
        ]
    )
    out = exporter.filter_exposition(collector_output, re.compile("^__"), re.compile("^$"))
    assert out.splitlines() == [
        "# HELP kafka_consumergroup_lag Current Approximate Lag",
        "# TYPE kafka_consumergroup_lag gauge",
        f'kafka_consumergroup_lag{{consumergroup="{group}",partition="0",topic="{topic}"}} 5',
        f'kafka_consumergroup_lag{{consumergroup="a\\"b,c}}",partition="1",topic="{topic}"}} 7',
        "kafka_brokers 1",
    ]
    out = exporter.filter_exposition(collector_output, re.compile("^$"), re.compile("^a"))
    assert 'a\\"b' not in out and 'topic="__consumer_offsets"' in out


def test_collector_manifest_pins_one_contrib_version() -> None:
    manifest = (IMAGES / "kafka-exporter" / "builder.yaml").read_text()
    versions = set(re.findall(r"opentelemetry-collector-contrib/\S+ (v[\d.]+)", manifest))
    assert len(versions) == 1, versions
    assert images.OTELCOL_BUILDER.rsplit("@", 1)[1].startswith("v0.140.")


@pytest.mark.parametrize("value", ["2s", "1500ms", "1m30s", "0.5s"])
def test_exporter_takes_a_go_duration_as_its_network_timeout(
    exporter: ModuleType, value: str
) -> None:
    exporter.check_network_timeout(value)
    exporter.check_network_timeout(None)  # unset: sarama's default


@pytest.mark.parametrize("value", ["", "2", "0s", "-1s", "2 s", "two seconds", "1d"])
def test_exporter_refuses_a_network_timeout_go_would_not_use(
    exporter: ModuleType, value: str
) -> None:
    with pytest.raises(exporter.UsageError, match=exporter.NETWORK_TIMEOUT_ENV):
        exporter.check_network_timeout(value)


def test_each_patched_module_has_its_patch_at_the_pinned_contrib_version() -> None:
    manifest = yaml.safe_load((IMAGES / "kafka-exporter" / "builder.yaml").read_text())
    patched = images.patched_modules(manifest)
    assert {directory for _, _, directory in patched} == {
        path.stem for path in (IMAGES / "kafka-exporter").glob("*.patch")
    }
    pinned = {entry["gomod"].split()[1] for entry in manifest["receivers"]}
    for module, version, directory in patched:
        assert module.startswith(images.OTEL_CONTRIB + "/"), module
        assert {version} == pinned, (module, version)
        patch = (IMAGES / "kafka-exporter" / f"{directory}.patch").read_text()
        assert "\n--- a/" in patch and "\n+++ b/" in patch, f"{directory}.patch is not -p1"


def test_a_replaces_entry_without_its_version_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("module version => ../dir")):
        images.patched_modules({"replaces": ["example.com/m => ../m"]})


def test_the_exporter_client_timeout_follows_the_run_clock() -> None:
    env = services.exporter_env(services.Clock(Fraction(1, 15)))
    assert env == {"KAFKA_EXPORTER_NETWORK_TIMEOUT": "2000ms"}
    assert services.exporter_env(services.Clock(1)) == {"KAFKA_EXPORTER_NETWORK_TIMEOUT": "30000ms"}


def fake_docker_cli(monkeypatch: pytest.MonkeyPatch, present: set[str]) -> list[list[str]]:
    """`docker save` and `docker load` as the cache runs them, against a set of present tags: a
    fake archive is the list of tags it holds."""
    calls: list[list[str]] = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if command[1] == "save":
            Path(command[command.index("--output") + 1]).write_text(" ".join(command[4:]))
        elif command[1] == "load":
            text = Path(command[command.index("--input") + 1]).read_text()
            if not text.startswith("crm-cert/"):
                return subprocess.CompletedProcess(command, 1, "", "invalid tar header")
            present.update(text.split())
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(images.subprocess, "run", run)
    return calls


def test_the_archive_cache_holds_the_whole_set_once_by_its_inputs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(images.CACHE_ENV, raising=False)
    assert images.Builder().archive() is None  # no cache unless asked for
    builder = images.Builder(cache=tmp_path)
    archive = builder.archive()
    assert archive is not None and archive.parent == tmp_path
    present: set[str] = set()
    calls = fake_docker_cli(monkeypatch, present)
    monkeypatch.setattr(builder, "_image", lambda tag: object() if tag in present else None)
    offline_tags = [builder.tags[n] for n in images.OFFLINE]
    assert builder.load_cached(images.OFFLINE) is False  # nothing cached yet
    present.update(offline_tags[:-1])
    assert builder.save_cached() is None  # a partial set is not archived
    present.add(offline_tags[-1])
    stale = tmp_path / "offline-000000000000.tar"
    stale.write_text("older inputs")
    assert builder.save_cached() == archive
    assert archive.read_text().split() == offline_tags  # one archive, every offline image
    assert not stale.exists()
    assert builder.save_cached() is None  # already there: not saved again
    present.clear()  # a fresh machine, the same cache
    assert builder.load_cached(["app"]) is True
    assert present == set(offline_tags)
    assert builder.load_cached(["app"]) is False  # nothing missing: nothing loaded
    assert [c[1] for c in calls] == ["save", "load"]


def test_a_change_of_any_input_names_another_archive(monkeypatch: pytest.MonkeyPatch) -> None:
    builder = images.Builder(cache=Path("/cache"))
    before = builder.archive()
    monkeypatch.setitem(builder.tags, "app", "crm-cert/app:000000000000")
    assert builder.archive() != before


@pytest.fixture
def cached_builder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> tuple[images.Builder, Path, list[list[str]]]:
    """A builder with a cache directory, Docker holding no image (the `docker` commands it runs
    are recorded), and the path of the offline set's archive, not written yet."""
    builder = images.Builder(cache=tmp_path)
    archive = builder.archive()
    assert archive is not None
    calls = fake_docker_cli(monkeypatch, set())
    monkeypatch.setattr(builder, "_image", lambda tag: None)
    return builder, archive, calls


def test_a_damaged_archive_is_dropped_and_the_images_built(
    cached_builder: tuple[images.Builder, Path, list[list[str]]],
) -> None:
    builder, archive, _ = cached_builder
    archive.write_text("not a tar")
    assert builder.load_cached(["app"]) is False
    assert not archive.exists()


def test_an_upstream_build_never_loads_the_offline_archive(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    cached_builder: tuple[images.Builder, Path, list[list[str]]],
) -> None:
    builder, archive, calls = cached_builder
    archive.write_text(" ".join(builder.tags[n] for n in images.OFFLINE))
    monkeypatch.setattr(builder, "logs", tmp_path / "logs")
    monkeypatch.setattr(
        builder, "_build_one", lambda name: images.Result(name, builder.tags[name], "reused")
    )
    assert [r.name for r in builder.build(["app-python"])] == ["app-python"]
    assert calls == []
