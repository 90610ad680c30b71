"""A small chaos profile in CI: every scenario, both modes (`holiday chaos` runs the full one); its report.

The node scenario, which needs a 3-node cluster, runs once, in http mode.
"""

from __future__ import annotations

import re
from collections import Counter

import httpx
import pytest
from click.testing import CliRunner

from holiday.models import RunType
from holiday_tools.audit import AuditReport
from holiday_tools.chaos import SCENARIOS, run_scenario
from holiday_tools.chaos.load import Kill, Profile, ScenarioResult, TwoDown, reserve
from holiday_tools.chaos.report import format_result, format_results
from holiday_tools.cli import main
from holiday_tools.devstack import Mode
from holiday_tools.ingress import Ingress
from tests.support import PROJECT_DIR, assert_every_trip_settled_once

# At most 12 faults: a busy machine (the suite runs in parallel) slows the load, and must not earn it more faults.
SMALL = Profile(trips=30, concurrency=6, outage_s=1.5, answer_within_s=120, max_faults=12)
SMALL_NODE = Profile(trips=30, concurrency=6, kills=2, node_down_s=2.0, two_down_wait_s=4.0, answer_within_s=120)


@pytest.mark.parametrize("mode", ["http", "lambda"])
@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "node"])
def test_under_chaos_every_trip_is_answered_right_and_booked_or_undone_once(scenario: str, mode: Mode) -> None:
    result = run_scenario(scenario, mode, SMALL, PROJECT_DIR, seed=7, log=lambda _: None)
    assert result.faults >= 1
    assert_every_trip_settled_once(result)


def test_holiday_chaos_prints_a_line_per_scenario_then_a_table_within_100_columns(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(PROJECT_DIR)  # where the stack's binaries are, as for `make chaos`
    args = ["chaos", "--trips", "12", "--concurrency", "4", "--scenario", "services", "--mode", "http", "--seed", "7"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line for line in lines if len(line) > 100] == []
    assert lines[0] == "12 trips per scenario, 4 at once, half clean, half with an injected failure"
    assert re.fullmatch(r"services \(http\): 12 trips in [\d.]+ s, (1 fault|[2-9]\d* faults) injected: ok", lines[1])
    columns = "scenario mode trips faults time failover booked undone wrong violated stuck result"
    header = [line.split() for line in lines].index(columns.split())
    cells = lines[header + 1].split()
    assert cells[:3] == ["services", "http", "12"]
    assert cells[6] == "-"  # no failover: no node was killed
    assert cells[-4:] == ["0", "0", "0", "ok"]


def test_holiday_chaos_offers_the_node_scenario() -> None:
    result = CliRunner().invoke(main, ["chaos", "--scenario", "cluster"])
    assert result.exit_code == 2
    assert "'services', 'restate', 'dynamodb', 'node'" in result.output


def test_the_results_say_one_fault_and_add_up_in_a_total_row() -> None:
    def result(scenario: str, faults: int) -> ScenarioResult:
        report = AuditReport(trips=200, booked=110, undone=90)
        return ScenarioResult(scenario, "lambda", 200, faults, 114.5, 110, 90, report=report)

    results = [result("services", 1), result("restate", 73)]
    assert format_result(results[0]) == "services (lambda): 200 trips in 114.5 s, 1 fault injected: ok"
    table = format_results(results).splitlines()
    assert table[:4] == [
        "scenario  mode    trips  faults     time  failover   booked   undone  wrong  violated  stuck  result",
        "services  lambda    200       1  114.5 s         -  110/110    90/90      0         0      0      ok",
        "restate   lambda    200      73  114.5 s         -  110/110    90/90      0         0      0      ok",
        "in all              400      74  229.0 s         -  220/220  180/180      0         0      0      ok",
    ]
    assert max(map(len, table)) <= 100


def test_the_node_scenario_reports_each_kill_the_longest_failover_and_two_of_three_down() -> None:
    # The audit counts the trips sent while two nodes were down too; the table shows the load's.
    report = AuditReport(trips=204, booked=112, undone=92)
    node = ScenarioResult("node", "lambda", 200, 2, 95.3, 110, 90, report=report)
    same = "leader of the most partitions (5 of 8) and of the metadata: both on the same node"
    node.kills = [
        Kill("restate-1", same, at=0, after_s=3.2, down_s=3.0, whole_s=6.1, first_answer_s=0.2, failover_s=4.8),
        Kill("restate-3", "leader of the metadata", 0, 13.2, 3.0, 5.5, first_answer_s=0.0, failover_s=2.8),
    ]
    node.two_down = TwoDown(
        ["restate-1", "restate-2"],
        "restate-1",
        calls=4,
        clean=2,
        wait_s=5.0,
        met_while_down=Counter({"refused": 30, "timed out": 4}),
        answered_after_s=6.2,
        report=AuditReport(trips=4, booked=2, undone=2),
    )
    services = ScenarioResult("services", "http", 200, 7, 12.7, 110, 90, report=AuditReport(200, 110, 90))
    assert node.ok
    lines = format_result(node).splitlines()
    assert lines[0] == "node (lambda): 200 trips in 95.3 s, 2 nodes killed, longest failover 4.8 s: ok"
    assert " ".join(line.strip() for line in lines[1:]).split("    ") == [
        "kill 1 at 3.2 s: restate-1, leader of the most partitions (5 of 8) and of the metadata: both on the same "
        "node; failover 4.8 s (first answer to any trip: 0.2 s); back after 3.0 s, every partition replicated "
        "again 6.1 s later kill 2 at 13.2 s: restate-3, leader of the metadata; failover 2.8 s (first answer to "
        "any trip: 0.0 s); back after 3.0 s, every partition replicated again 5.5 s later two of three down: "
        "restate-1 and restate-2 killed; 4 reservations sent to the three ingresses: none answered in 5.0 s "
        "(attempts: 30 refused, 4 timed out), no row written; restate-1 back: all 4 answered right 6.2 s later, "
        "2 booked and 2 undone, each once: ok"
    ]
    table = format_results([services, node]).splitlines()
    assert table[:4] == [
        "scenario  mode    trips  faults     time  failover   booked   undone  wrong  violated  stuck  result",
        "services  http      200       7   12.7 s         -  110/110    90/90      0         0      0      ok",
        "node      lambda    200       2   95.3 s     4.8 s  110/110    90/90      0         0      0      ok",
        "in all              400       9  108.0 s     4.8 s  220/220  180/180      0         0      0      ok",
    ]
    assert max(map(len, format_results([services, node]).splitlines())) <= 100
    # A call answered while two of three nodes were down is a failure, whatever the answer.
    node.two_down.answered_while_down = 1
    assert not node.ok
    assert format_result(node).splitlines()[0].endswith(": FAILED")


def test_a_caller_asks_the_next_node_with_the_same_key_when_one_fails_it() -> None:
    seen: list[tuple[str, str | None]] = []

    def node(answer: httpx.Response | type[httpx.TransportError]) -> Ingress:
        def handle(request: httpx.Request) -> httpx.Response:
            seen.append((str(request.url.host), request.headers.get("idempotency-key")))
            if isinstance(answer, httpx.Response):
                return answer
            raise answer("no", request=request)

        return Ingress(f"http://node{len(clients) + 1}", transport=httpx.MockTransport(handle))

    clients: list[Ingress] = []
    unknown = {"code": 404, "message": "service 'trips' not found", "source": "ingress"}
    clients.append(node(httpx.ConnectError))  # a dead node
    clients.append(node(httpx.Response(404, json=unknown)))  # just started: it does not know the services yet
    clients.append(node(httpx.ReadTimeout))  # holds the call: no answer in time
    clients.append(node(httpx.Response(409, json={"code": 409, "message": "any wording"})))
    met: list[tuple[float, str]] = []
    answer = reserve(clients, "t1", RunType.FAIL_PAYMENT, within_s=10, met=met)
    assert isinstance(answer, httpx.Response)
    assert answer.status_code == 409
    assert [what for _, what in met] == ["refused", "not ready (404)", "timed out"]
    assert seen == [(f"node{n}", "chaos-t1") for n in range(1, 5)]  # each node, the same key
    # A 404 from a handler is an answer (here a wrong one), not a node to pass by.
    clients[:] = [node(httpx.Response(404, json={"code": 404, "source": "invocation"}))]
    assert reserve(clients, "t2", None, within_s=10).status_code == 404  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def node_scenario() -> ScenarioResult:
    """The node scenario's small profile, once for the tests below: a cluster start and two kills take a while."""
    return run_scenario("node", "http", SMALL_NODE, PROJECT_DIR, seed=7, log=lambda _: None)


def test_killing_cluster_nodes_one_at_a_time_loses_no_trip_and_each_failover_is_measured(
    node_scenario: ScenarioResult,
) -> None:
    result = node_scenario
    assert result.problems == []
    assert result.faults == len(result.kills) == 2
    for kill in result.kills:
        assert kill.failover_s is not None, kill  # a trip sent after the kill was answered right
        assert kill.first_answer_s is not None
        assert kill.first_answer_s <= kill.failover_s
        assert kill.whole_s is not None  # restarted, and the cluster whole again before the next kill
    assert result.wrong_answers == []
    assert result.report.violations == []
    assert (result.booked, result.undone) == (result.clean, result.failing)
    assert result.report.stuck_invocations == []
    assert result.ok


def test_with_two_of_three_nodes_down_the_cluster_refuses_work_and_resumes_when_one_comes_back(
    node_scenario: ScenarioResult,
) -> None:
    two_down = node_scenario.two_down
    assert two_down is not None
    assert two_down.calls == SMALL_NODE.two_down_calls
    # Nothing answered and nothing written while two nodes were down: no diverging, no half-done trip ...
    assert (two_down.answered_while_down, two_down.rows_while_down) == (0, 0)
    assert two_down.met_while_down  # ... the callers were refused, or held, all along
    # ... and with one node back, the same calls (same keys) got the right answers, each trip settled once.
    assert two_down.answered_after_s is not None
    assert two_down.wrong_answers == []
    assert (two_down.report.trips, two_down.report.booked, two_down.report.undone) == (
        two_down.calls,
        two_down.clean,
        two_down.failing,
    )
    assert two_down.report.violations == []
    assert two_down.ok
