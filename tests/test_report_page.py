"""reports/index.html as a reader sees it: opened in headless Chromium, its screenshots are not
blank and its verdict is evidence.json's; the dashboard replay queries Prometheus' range API over
the episode (scaled as the rules are) and draws every panel of the deployed dashboard.

Chromium and matplotlib run for real; Prometheus is a fake HTTP server (the replay's boundary).
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from harness import page_check, replay
from harness.contract import CHECKLIST
from harness.pictures import draw_dashboard
from harness.report import floor_ratio
from tests.test_verdict import certify

pytestmark = pytest.mark.claim("harness.self_test")


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real certify run's reports (one informational claim proven: NOT CERTIFIED)."""
    tmp_path = tmp_path_factory.mktemp("page")
    process, evidence = certify(
        tmp_path,
        """
        import pytest

        @pytest.mark.claim("window.seed_queries")
        def test_informational():
            pass
        """,
    )
    assert evidence["verdict"] == "NOT CERTIFIED", process.stdout + process.stderr
    return tmp_path / "reports"


def test_the_page_shows_the_verdict_evidence_json_records(reports: Path) -> None:
    assert page_check.check(reports) == []
    assert page_check.ink_share(reports / "index.png") >= page_check.MIN_INK_SHARE


def test_a_page_that_disagrees_with_its_evidence_is_caught(reports: Path, tmp_path: Path) -> None:
    for name in ("index.html", "evidence.json"):
        (tmp_path / name).write_bytes((reports / name).read_bytes())
    evidence = json.loads((tmp_path / "evidence.json").read_text())
    (tmp_path / "evidence.json").write_text(json.dumps(evidence | {"verdict": "CERTIFIED"}))
    assert page_check.check(tmp_path) == [
        "the page shows 'NOT CERTIFIED', evidence.json says 'CERTIFIED'"
    ]


def test_a_blank_page_is_caught(tmp_path: Path) -> None:
    (tmp_path / "index.html").write_text(
        '<!doctype html><p id="verdict" style="color:white">CERTIFIED</p>'
    )
    (tmp_path / "evidence.json").write_text(json.dumps({"verdict": "CERTIFIED"}))
    problems = page_check.check(tmp_path)
    assert problems and all("is blank" in problem for problem in problems)


def _range_answer(request: Request) -> Response:
    start, end = (float(request.args[k]) for k in ("start", "end"))
    values = [[start + i, str(i % 7)] for i in range(int(end - start))]
    body = {"status": "success", "data": {"resultType": "matrix", "result": []}}
    body["data"]["result"] = [{"metric": {"partition": "0"}, "values": values}]
    return Response(json.dumps(body), content_type="application/json")


def test_the_replay_reads_each_panel_over_the_episode_scaled(
    httpserver: HTTPServer, tmp_path: Path
) -> None:
    httpserver.expect_request("/api/v1/query_range").respond_with_handler(_range_answer)
    captured = replay.capture(httpserver.url_for("/"), 1000.0, 1100.0, Fraction(1, 15))
    board = replay.panels()
    assert len(board) == CHECKLIST.dashboard_panels
    assert set(captured["panels"]) == {panel.title for panel in board}
    queries = [parse_qs(request.query_string.decode()) for request, _ in httpserver.log]
    assert {q["start"][0] for q in queries} == {"1000.0"}
    assert {q["end"][0] for q in queries} == {"1100.0"}
    # The dashboard's [5m] is 20s on a 1/15 stack, as in the rendered rules.
    assert any("[20s]" in q["query"][0] for q in queries)
    assert not any("[5m]" in q["query"][0] for q in queries)
    assert draw_dashboard("an episode", captured, tmp_path) == "dashboard-an-episode.png"
    assert page_check.ink_share(tmp_path / "dashboard-an-episode.png") > 0.2


def test_a_short_episode_is_replayed_with_its_lead_in(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/v1/query_range").respond_with_handler(_range_answer)
    captured = replay.capture(httpserver.url_for("/"), 1000.0, 1002.0, Fraction(1, 15))
    assert captured["lead_in_s"] == replay.MIN_SPAN_S - 2
    first = captured["panels"]["Hot-key skew ratio"][0]["series"][0]["points"][0]
    assert first[0] == -(replay.MIN_SPAN_S - 2)


def test_prometheus_unreachable_is_said_on_the_page(tmp_path: Path) -> None:
    captured = replay.capture("http://127.0.0.1:9", 1000.0, 1100.0, Fraction(1, 15))
    answers = [a for panel in captured["panels"].values() for a in panel]
    assert answers and all("error" in a for a in answers)
    written = draw_dashboard("an episode", captured, tmp_path)
    assert (tmp_path / written).is_file()  # drawn, every panel saying so


def test_an_episode_that_beat_its_floor_is_named_as_a_wrong_floor():
    assert floor_ratio(11.0, 10.0) == "1.10"
    assert floor_ratio(10.0, 10.0) == "1.00"
    assert floor_ratio(9.5, 10.0) == "0.95: below its floor, the floor is wrong"
    assert floor_ratio(5.0, 0.0) == "-"
