"""`holiday`: run the local stack, book trips and look them up from a terminal."""

from __future__ import annotations

import contextlib
import json
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar
from urllib.parse import urlsplit

import click
import httpx
from botocore.exceptions import BotoCoreError, ClientError
from click.core import ParameterSource

from holiday.config import Settings
from holiday.functions import MEMORY_MB
from holiday.models import RunType, TripRecord
from holiday.storage import DynamoLedger, Row
from holiday_tools.chaos import EVERY_SCENARIO
from holiday_tools.cost import DEFAULT_COLD_START_PERCENT, DEFAULT_VOLUMES, parse_volumes, run_cost_command
from holiday_tools.devstack import LOCAL_ACCOUNT, LocalStack, Mode, Ports, StackError
from holiday_tools.ingress import FAILED_TRIP_STATUS, Ingress, IngressRefused, failure_reason, message, undone
from holiday_tools.text import format_table, plural, wrap

if TYPE_CHECKING:
    from holiday_tools.bench import IngressUrl

DEFAULT_INGRESS = "http://127.0.0.1:8080"
LOCAL_AWS = "http://127.0.0.1:4566"
LOCAL_ADMIN = f"http://127.0.0.1:{Ports.admin}"
LOCAL_LAMBDA = f"http://127.0.0.1:{Ports.functions}"
T = TypeVar("T")
ROW_COLUMNS = {"pk", "sk", "transaction_status", "updated_at"}  # what `holiday rows` shows in columns
# The trip ids `holiday reserve` picks when given none: a repeat with the same idempotency key, the same id.
TRIP_IDS = uuid.UUID("5d1e4c1a-3b0f-4f43-9d55-2f7c0e1d8a90")


def _url(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """`host:port` means http://host:port, as curl reads it; any other scheme is refused here, not mid-call."""
    return _http_url(value) if value else value


def _http_url(value: str) -> str:
    url = value if "://" in value else f"http://{value}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise click.BadParameter(f"{value!r} is not an http:// or https:// URL, like {DEFAULT_INGRESS}")
    return url.rstrip("/")


def _ingresses(_ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]) -> tuple[IngressUrl, ...]:
    """Each `URL` or `LABEL=URL`. With several, each has a label (`host:port` by default), and no two the same:
    the report tells them apart by it."""
    from holiday_tools.bench import IngressUrl

    given = [_labelled(value) for value in values]
    if len(given) < 2:
        return tuple(given)
    labelled = [IngressUrl(i.url, i.label or _host_port(i.url)) for i in given]
    labels = [i.label for i in labelled]
    if twice := next((label for label in labels if labels.count(label) > 1), None):
        raise click.BadParameter(
            f"{twice!r} labels more than one ingress; give each a label of its own, as LABEL=URL (a=localhost:8080)"
        )
    return tuple(labelled)


def _labelled(value: str) -> IngressUrl:
    """`LABEL=URL`, or a URL alone (one with `=` in its query too: a label has no `/` or `:`)."""
    from holiday_tools.bench import IngressUrl

    label, separator, url = value.partition("=")
    if not separator or "/" in label or ":" in label:
        return IngressUrl(_http_url(value))
    if not label.strip():
        raise click.BadParameter(f"{value!r} has an empty label: give LABEL=URL, or the URL alone")
    return IngressUrl(_http_url(url), label.strip())


def _host_port(url: str) -> str:
    """An ingress's default label: `127.0.0.1:8080`."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _token(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """The ingress key as a header carries it; never echoed back, even when refused: it is a secret."""
    token = (value or "").strip()  # a key read from a file may end in a newline
    if any(not "!" <= char <= "~" for char in token):
        raise click.BadParameter("a key is printable ASCII, no spaces (not shown here: it is a secret)")
    return token or None


ingress_option = click.option(
    "--ingress",
    envvar="HOLIDAY_INGRESS",
    default=DEFAULT_INGRESS,
    show_default=True,
    callback=_url,
    help="Restate ingress URL; host:port means http:// (env HOLIDAY_INGRESS).",
)
token_option = click.option(
    "--token",
    envvar="HOLIDAY_INGRESS_TOKEN",
    callback=_token,
    help="The ingress key of a deployed ingress: a self-hosted deployment's key, or a Restate Cloud API key; "
    "sent as Authorization: Bearer (env HOLIDAY_INGRESS_TOKEN).",
)
insecure_option = click.option(
    "--insecure",
    envvar="HOLIDAY_INGRESS_INSECURE",
    is_flag=True,
    help="Accept a self-signed TLS certificate, as curl -k does: a default self-hosted deployment serves one "
    "(env HOLIDAY_INGRESS_INSECURE).",
)
stack_option = click.option(
    "--stack",
    help="Read a deployment: the table names come from this CloudFormation stack's outputs "
    "(e.g. RestateHolidayStack), with your AWS credentials.",
)
aws_endpoint_option = click.option(
    "--aws-endpoint",
    envvar="AWS_ENDPOINT_URL",
    callback=_url,
    help=f"AWS endpoint of the tables [default: the local stack's, {LOCAL_AWS}, unless --stack].",
)


@click.group()
def main() -> None:
    """A durable holiday-booking saga on Restate."""


def _port_option(name: str, default: int, what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        f"--{name}-port",
        envvar=f"HOLIDAY_{name.upper()}_PORT",
        default=default,
        show_default=True,
        help=f"{what} (env HOLIDAY_{name.upper()}_PORT).",
    )


@main.command()
@_port_option("ingress", 8080, "Restate ingress port")
@_port_option("admin", 9070, "Restate admin port")
@_port_option("aws", 4566, "Local AWS stand-in (moto) port")
@_port_option("services", 9080, "Port the four services listen on")
@_port_option("fabric", 5122, "Restate's internal node-to-node port")
@_port_option("functions", 9090, "Local Lambda runtime port (lambda mode)")
@click.option(
    "--mode",
    envvar="HOLIDAY_MODE",
    type=click.Choice(["http", "lambda"]),
    default="http",
    show_default=True,
    help="http: the services in one HTTP/2 server. lambda: each service a Lambda function, "
    "invoked by Restate through the Lambda API of a local runtime (env HOLIDAY_MODE).",
)
@click.option(
    "--nodes",
    envvar="HOLIDAY_NODES",
    type=click.Choice(["1", "3"]),
    default="1",
    show_default=True,
    help="restate-server nodes: 3 is a replicated cluster, configured as RestateStack's on AWS; node N uses the "
    "ingress, admin and fabric ports plus N-1 (env HOLIDAY_NODES).",
)
@click.option(
    "--snapstart",
    envvar="HOLIDAY_SNAPSTART",
    is_flag=True,
    help="lambda mode: start the functions' workers as Lambda SnapStart does, each forked from one import per "
    "version that ran the before-snapshot hooks, then running the after-restore hooks (Linux; env "
    "HOLIDAY_SNAPSTART=1).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path(".holiday"),
    show_default=True,
    help="Restate's data and the logs; wiped at each start, since moto keeps its tables in memory.",
)
def dev(
    ingress_port: int,
    admin_port: int,
    aws_port: int,
    services_port: int,
    fabric_port: int,
    functions_port: int,
    mode: Mode,
    nodes: str,
    snapstart: bool,
    data_dir: Path,
) -> None:
    """Run the whole stack on 127.0.0.1 until Ctrl-C: moto, restate-server and the services."""
    if snapstart and mode != "lambda":
        _fail("--snapstart is for the Lambda functions: add --mode lambda (or run make dev-lambda)")
    ports = Ports(aws_port, ingress_port, admin_port, services_port, fabric_port, functions_port)
    stack = LocalStack(
        Path.cwd(),
        data_dir.resolve(),
        ports,
        services_log_to_terminal=True,
        mode=mode,
        nodes=int(nodes),
        lambda_snapstart=snapstart,
    )
    # Ctrl-C, SIGTERM and SIGHUP (a closed terminal) all stop the stack the same way; SIGINT
    # even when the shell started us with it ignored (`holiday dev &`).
    for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(stop_signal, _interrupt)
    try:
        servers = "restate-server" if stack.nodes == 1 else f"{stack.nodes} restate-server nodes"
        click.echo(f"Starting moto, {servers} and the services ({mode} mode) ...")
        stack.start()
        click.echo(_banner(stack))
        # A restate-server node that exits is started again, as systemd does on a host; only moto or
        # the services exiting, or a node that keeps exiting, stops the stack.
        while not (fatal := stack.supervise(_say)):
            time.sleep(0.5)
        _fail(fatal)
    except StackError as err:
        _fail(str(err))
    except KeyboardInterrupt:
        _say("\nStopping ...")
    finally:
        # A second signal while stopping must not cut the stop short.
        for stop_signal in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(stop_signal, signal.SIG_IGN)
        killed = stack.stop()
        if killed:
            _say(f"{', '.join(killed)} did not stop in time and had to be killed; see the logs in {stack.log_dir}")


def _interrupt(*_: object) -> NoReturn:
    """Ctrl-C, SIGTERM and SIGHUP all stop the stack cleanly."""
    raise KeyboardInterrupt


def _say(text: str) -> None:
    """Print, unless the terminal has gone (after SIGHUP, say): stopping matters more than the line."""
    with contextlib.suppress(OSError):
        click.echo(text)


def _banner(stack: LocalStack) -> str:
    i = stack.ingress_url
    cli = _holiday_command()
    services_note = "  (local Lambda runtime: GET /local/stats)" if stack.mode == "lambda" else ""
    ingress_flag = "" if i == DEFAULT_INGRESS else f" --ingress {i}"
    aws_flag = "" if stack.aws_url == LOCAL_AWS else f" --aws-endpoint {stack.aws_url}"
    settings = stack.settings
    shape, ingresses, admins, logs, other = f"{stack.mode} mode", i, stack.admin_url, "restate.log", ""
    if stack.nodes > 1:
        shape += f", a cluster of {stack.nodes} restate-server nodes (replicated: any one may stop)"
        width = len(i) + 2
        ingresses = "\n            ".join(
            f"{url:<{width}}(node {n})" for n, url in enumerate(stack.ingress_urls, start=1)
        )
        admins = "\n            ".join(f"{url:<{width}}(node {n})" for n, url in enumerate(stack.admin_urls, start=1))
        logs = f"{stack.restate_names[0]}.log ... {stack.restate_names[-1]}.log"
        other = f"\n  curl {stack.ingress_urls[-1]}/trip/foo/status   # any node's ingress, the same answer"
    return f"""
The holiday stack is up (everything on 127.0.0.1), {shape}:
  ingress   {ingresses}
  admin     {admins}
  UI        {stack.admin_url}/ui/  (Restate's UI: invocations, their journals, state)
  AWS       {stack.aws_url}  (moto: tables {settings.flights_table}, {settings.cars_table}, {settings.payments_table})
  topic     {settings.topic_arn}
  services  {stack.services_url}{services_note}
  logs      {_shown(stack.log_dir)}
            ({logs}, moto.log, services.log; the services' log is also printed below)

Try:
  curl {i}/trips/reserve --json '{{}}'
  curl {i}/trips/reserve --json '{{"request": {{"run_type": "failPayment"}}}}'
  curl {i}/trips/reserve --json '{{"trip_id": "foo"}}'
  curl {i}/trip/foo/status{other}
  {cli} rows foo{aws_flag}
  {cli} reserve{ingress_flag} --run-type failNotification

Ctrl-C stops everything.
"""


def _holiday_command() -> str:
    """This CLI as the user can type it: `make dev` runs it from the venv without activating it."""
    return _shown(Path(sys.executable).parent / "holiday")


def _shown(path: Path) -> str:
    """`path` relative to the working directory when it is inside it: shorter, and still works as typed."""
    return str(path.relative_to(Path.cwd()) if path.is_relative_to(Path.cwd()) else path)


@main.command()
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("build/lambda"),
    show_default=True,
    help="Where the assets go, one folder per function.",
)
def package(out: Path) -> None:
    """Build the four Lambda assets (arm64, Python 3.14); print sizes and handler import times."""
    from holiday_tools.packaging import SIZE_BUDGET_MB, build, format_report

    click.echo(f"Building Lambda assets in {out} ...")
    reports = build(Path.cwd(), out.resolve())
    click.echo(format_report(reports))
    if any("size" in r.over_budget for r in reports):
        _fail(f"an asset is over the {SIZE_BUDGET_MB:.0f} MB budget")


def _admin_option(purpose: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option(
        "--admin",
        envvar="HOLIDAY_ADMIN",
        default=LOCAL_ADMIN,
        show_default=True,
        callback=_url,
        help=f"Restate admin API, {purpose} (env HOLIDAY_ADMIN).",
    )


admin_token_option = click.option(
    "--admin-token", envvar="RESTATE_AUTH_TOKEN", help="Bearer token for the admin API (Restate Cloud)."
)


@main.command()
@stack_option
@aws_endpoint_option
@_admin_option("to list invocations still retrying; '' to skip")
@admin_token_option
@click.option(
    "--threshold",
    default=60.0,
    show_default=True,
    help="Seconds: a pending row older than this is stuck; a trip changed more recently is in flight.",
)
def audit(stack: str | None, aws_endpoint: str | None, admin: str, admin_token: str | None, threshold: float) -> None:
    """Check every trip in the tables: fully booked or fully undone, no duplicates, nothing stuck.

    Exits 1 on a violation, and when it cannot read the tables or query the admin API.
    """
    from holiday_tools.audit import audit as run_audit
    from holiday_tools.audit import format_report

    ledgers = _ledgers(stack, aws_endpoint)
    with _reading_tables():
        report = run_audit(ledgers, threshold, admin or None, admin_token)
    click.echo(format_report(report, threshold, admin_error=False))
    if report.admin_error:
        _fail(report.admin_error)  # it did not look: not an all clear
    if not report.ok:
        raise SystemExit(1)


@main.command()
@click.argument("trip_id")
@stack_option
@aws_endpoint_option
def rows(trip_id: str, stack: str | None, aws_endpoint: str | None) -> None:
    """Show a trip's rows in the flights, cars and payments tables: status, booking id, last change, details."""
    ledgers = _ledgers(stack, aws_endpoint)
    with _reading_tables():
        found = {key: sorted(ledger.rows(trip_id), key=lambda row: str(row["sk"])) for key, ledger in ledgers.items()}
    names = ", ".join(ledger.table_name for ledger in ledgers.values())
    if not any(found.values()):
        _fail(f"trip {trip_id!r} has no rows in the tables {names}")
    click.echo("\n".join([*wrap(f"Trip {trip_id}: its rows in the tables {names}", "  "), _format_rows(found)]))


def _format_rows(found: dict[str, list[Row]]) -> str:
    """One line per row (or "(no row)"), its other attributes wrapped beneath it."""
    cells: list[tuple[str, ...]] = []
    details: list[str] = []
    for key, table_rows in found.items():
        for row in table_rows:
            cells.append((key, str(row["transaction_status"]), str(row["sk"]), _utc(row["updated_at"])))
            details.append(" ".join(f"{k}={v}" for k, v in row.items() if k not in ROW_COLUMNS))
        if not table_rows:
            cells.append((key, "(no row)", "", ""))
            details.append("")
    header, *lines = format_table(("table", "status", "booking id", "updated (UTC)"), cells, left=4)
    indent = " " * (max(map(len, found)) + 2)  # under the status
    out = [header]
    for line, more in zip(lines, details, strict=True):
        out += [line, *wrap(more, indent, indent)]
    return "\n".join(out)


def _utc(timestamp: Any) -> str:
    """Seconds since the epoch (as the tables store them) as a UTC time to the millisecond."""
    return datetime.fromtimestamp(float(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


@contextmanager
def _reading_tables() -> Iterator[None]:
    """A table that cannot be read is one line of error, not a traceback."""
    try:
        yield
    except (BotoCoreError, ClientError) as err:
        _fail(f"cannot read the tables: {err}")


def _ledgers(stack: str | None, endpoint: str | None) -> dict[str, DynamoLedger]:
    """The three tables: named by the stack's outputs, or by the environment (local defaults)."""
    import boto3

    settings = Settings.from_env()
    names = {"flights": settings.flights_table, "cars": settings.cars_table, "payments": settings.payments_table}
    options: dict[str, Any] = {"region_name": settings.aws_region}
    if stack is not None:
        try:
            described = boto3.client("cloudformation", **options).describe_stacks(StackName=stack)
        except (BotoCoreError, ClientError) as err:
            _fail(f"cannot read the outputs of stack {stack}: {err}")
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described["Stacks"][0].get("Outputs", [])}
        names = {key: outputs[f"{key}TableName"] for key in names}
    else:
        options["endpoint_url"] = endpoint or LOCAL_AWS
        if _is_loopback(options["endpoint_url"]):
            options.update(aws_access_key_id="local", aws_secret_access_key="local")
    client = boto3.client("dynamodb", **options)
    return {key: DynamoLedger(name, client) for key, name in names.items()}


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in ("127.0.0.1", "localhost", "::1")


@main.command()
@_admin_option("whose deployments to prune")
@admin_token_option
@click.option(
    "--insecure",
    "admin_insecure",
    is_flag=True,
    help="Accept a self-signed TLS certificate from the admin API, as curl -k does.",
)
@click.option(
    "--keep",
    default=2,
    show_default=True,
    type=click.IntRange(min=1),
    help="Deployments kept per service, newest first, counting the current one: the rest can be rolled back to.",
)
@click.option(
    "--lambda-endpoint",
    envvar="AWS_ENDPOINT_URL_LAMBDA",
    callback=_url,
    help=f"Lambda API for deleting versions [default: the local runtime's, {LOCAL_LAMBDA}, when the functions are "
    f"the local stack's (account {LOCAL_ACCOUNT}); else AWS's, with your credentials].",
)
@click.option("--dry-run", is_flag=True, help="Print the plan only; change nothing.")
def prune(
    admin: str, admin_token: str | None, admin_insecure: bool, keep: int, lambda_endpoint: str | None, dry_run: bool
) -> None:
    """Remove the deployments no invocation runs on any more, and their Lambda versions.

    Never the current deployment of a service, never one with an invocation pinned to it,
    never the newest --keep of a service. Exits 1 when something could not be removed.
    """
    from holiday_tools import prune as pruning
    from holiday_tools.admin import AdminError, RestateAdmin

    if not admin:
        _fail("--admin is required: the Restate admin API whose deployments to prune")
    with RestateAdmin(admin, admin_token, admin_insecure) as api:
        try:
            deployments = pruning.plan(pruning.read(api), keep)
            endpoint = pruning.lambda_endpoint(deployments, lambda_endpoint, LOCAL_ACCOUNT, LOCAL_LAMBDA)
            local = endpoint is not None and _is_loopback(endpoint)  # the local runtime's credentials
            versions_api = pruning.Boto3Versions(endpoint, local)
            versions = pruning.plan_versions(deployments, versions_api, keep)
        except (AdminError, pruning.VersionError) as err:
            _fail(str(err))
        click.echo(pruning.format_plan(deployments, versions, admin, keep))
        removals = sum(not d.keep for d in deployments) + sum(len(v.doomed) for v in versions)
        if dry_run or not removals:
            click.echo("\nDry run: nothing changed." if removals else "\nNothing to remove.")
            return
        click.echo("")
        outcome = pruning.prune(api, deployments, versions, versions_api, click.echo)
    click.echo(
        f"\nRemoved {plural(len(outcome.removed), 'deployment')} from Restate and deleted "
        f"{plural(len(outcome.versions_deleted), 'Lambda version')}."
    )
    if outcome.problems:
        _fail("not everything could be removed: " + "; ".join(outcome.problems))


@main.command()
@click.option(
    "--trips",
    default=200,
    show_default=True,
    help="Reservations per scenario (rolling: at least; its load lasts the whole roll).",
)
@click.option("--concurrency", default=16, show_default=True, help="Reservations in flight at once.")
@click.option(
    "--scenario",
    "scenarios",
    multiple=True,
    type=click.Choice(EVERY_SCENARIO),
    help="Which faults to inject (repeatable) [default: all]; node kills nodes of a 3-node cluster; freeze "
    "stops (SIGSTOP) the busiest one for 20 s; rolling "
    "upgrades restate-server node by node on a 3-node cluster, waiting for the hosts' readiness check between "
    "two; rolling1 does the same to a single node, and reports its downtime; upgrade deploys new code halfway "
    "through the load and prunes the old at the end.",
)
@click.option(
    "--mode",
    "modes",
    multiple=True,
    type=click.Choice(["http", "lambda"]),
    help="Run the services over HTTP, as Lambda functions, or both (repeatable) [default: both].",
)
@click.option("--seed", default=0, show_default=True, help="Seeds the trip mix and the fault timing.")
def chaos(trips: int, concurrency: int, scenarios: tuple[str, ...], modes: tuple[Mode, ...], seed: int) -> None:
    """Book trips under load while killing the services, restate-server, DynamoDB or cluster nodes; then audit."""
    from holiday_tools.chaos import run_scenario
    from holiday_tools.chaos.load import Profile
    from holiday_tools.chaos.report import format_results
    from holiday_tools.text import plural

    profile = Profile(trips=trips, concurrency=concurrency)
    click.echo(
        f"{plural(trips, 'trip')} per scenario, {concurrency} at once, half clean, half with an injected failure"
    )
    results = [
        run_scenario(scenario, mode, profile, Path.cwd(), seed, log=click.echo)
        for mode in modes or ("http", "lambda")
        for scenario in scenarios or EVERY_SCENARIO
    ]
    click.echo(f"\n{format_results(results)}")
    if not all(r.ok for r in results):
        _fail("the saga broke a promise under chaos; see above")


@main.command()
@click.option("--count", default=300, show_default=True, help="Reservations per run.")
@click.option(
    "--concurrency",
    default="1,32",
    show_default=True,
    help="Reservations in flight at once; a comma-separated list runs each in turn.",
)
@click.option("--mix", default="clean=1", show_default=True, help="run_types and weights, e.g. clean=6,failPayment=1.")
@click.option(
    "--baseline/--no-baseline",
    default=True,
    help="Drive the null saga before the saga at each level [default: on, off with several --ingress].",
)
@click.option(
    "--mode",
    type=click.Choice(["http", "lambda"]),
    default="http",
    show_default=True,
    help="How the local stack runs the services.",
)
@click.option(
    "--nodes",
    default="1",
    show_default=True,
    help="restate-server nodes of the local stack: 1, or 3 (a replicated cluster, as `holiday dev --nodes 3`); "
    "1,3 benches a fresh stack of each size in turn, with the same load, and compares them.",
)
@click.option(
    "--ingress",
    "ingresses",
    multiple=True,
    metavar="[LABEL=]URL",
    callback=_ingresses,
    help="Bench this running ingress instead of starting a local stack; host:port means http://. Repeat it to "
    "compare several with the same load, each against the first (LABEL names one in the report; host:port by "
    "default). On this machine (127.0.0.1, localhost) its restate-server and services are found from /proc/net "
    "and their CPU counted (Linux only: elsewhere the report says their CPU is unknown).",
)
@click.option(
    "--rounds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Measured runs of each ingress at each concurrency, in turn (A, B, A, B); ratios compare the medians.",
)
@click.option(
    "--judge",
    type=click.Choice(["strict", "status"]),
    default="strict",
    show_default=True,
    help="How each answer is checked. strict: as this project answers (a failed trip's 409, and its record "
    "naming the failed step). status: 200 for a clean trip, any 4xx or 5xx for an injected failure, for a saga "
    "other than this project's, such as the original. A wrong answer is never throughput.",
)
@click.option(
    "--memory",
    "memories",
    default="",
    help="Lambda mode: the functions' memory in MB, a comma-separated list to compare, e.g. 512,1024,1769. Each "
    "size gets a fresh stack whose workers have CPU in proportion, as on Lambda (one core at 1,769 MB; Linux "
    "with a cgroup cpu controller, else one line says the sizes differ in price only). [default: the deployed "
    "size, CPU not limited]",
)
@click.option(
    "--snapstart",
    is_flag=True,
    help="Lambda mode: the local runtime starts the functions' workers as SnapStart does (one import per "
    "version, each worker forked from it); the report shows restores beside inits.",
)
@click.option(
    "--cold-starts",
    type=click.IntRange(min=1),
    help="Instead of a load: start this many fresh workers of each function, one at a time, as the local Lambda "
    "runtime starts them, and print the median init (the handler's import) at the deployed memory (or the one "
    "--memory size), with CPU in proportion where the machine allows it.",
)
@click.option(
    "--against",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="With --cold-starts: another checkout's root (e.g. a `git worktree` of an older commit), whose functions "
    "start in turn with this checkout's, and the ratio of the two.",
)
@click.option(
    "--dates",
    is_flag=True,
    help="Each request names its departure, as a booking form would. Without it the saga fills in the dates "
    "from a durable clock read: on Lambda, one more invocation of the trips function per trip.",
)
@token_option
@insecure_option
@click.option("--warmup", default=30, show_default=True, help="Reservations sent first and not counted.")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@click.pass_context
def bench(
    ctx: click.Context,
    count: int,
    concurrency: str,
    mix: str,
    baseline: bool,
    mode: Mode,
    nodes: str,
    ingresses: tuple[IngressUrl, ...],
    rounds: int,
    judge: str,
    memories: str,
    snapstart: bool,
    cold_starts: int | None,
    against: Path | None,
    dates: bool,
    token: str | None,
    insecure: bool,
    warmup: int,
    as_json: bool,
) -> None:
    """Measure trips/s and latency against the null saga, with CPU per process and Lambda cost; or compare
    running ingresses (this project's and the original's, say) under the same load."""
    from holiday_tools.bench import run_bench_command

    if cold_starts is not None or against is not None:
        _cold_starts(cold_starts, against, _sizes(memories))
        return

    if len(ingresses) > 1 and ctx.get_parameter_source("baseline") is ParameterSource.DEFAULT:
        baseline = False  # the null saga is this project's: several ingresses are compared with each other
    if token is not None and not ingresses:
        # Its own local stack takes no key: a key means a deployed ingress, which only --ingress names.
        if ctx.get_parameter_source("token") is ParameterSource.ENVIRONMENT:
            _fail(
                "HOLIDAY_INGRESS_TOKEN is set, and a key is for a deployed ingress: name it with --ingress URL, "
                "or unset HOLIDAY_INGRESS_TOKEN to bench a local stack of its own, which takes no key."
            )
        _fail(
            "--token is for a deployed ingress: name it with --ingress URL. Without --ingress, bench starts "
            "a local stack of its own, which takes no key."
        )
    if ingresses and ctx.get_parameter_source("nodes") is not ParameterSource.DEFAULT:
        _fail(
            "--nodes is for the local stacks bench starts; --ingress benches a stack that is already running, "
            "whatever its nodes: use one or the other."
        )
    try:
        levels = [int(c) for c in concurrency.split(",") if c.strip()]
    except ValueError:
        _fail(f"--concurrency wants whole numbers separated by commas, like 1,32; got {concurrency!r}")
    try:
        sizes = [int(n) for n in nodes.split(",") if n.strip()]
    except ValueError:
        sizes = []
    if not sizes or any(n not in (1, 3) for n in sizes) or len(set(sizes)) != len(sizes):
        _fail(f"--nodes wants 1, 3 or 1,3 (a single node, a 3-node cluster, or both in turn); got {nodes!r}")
    try:
        output = run_bench_command(
            count,
            levels,
            mix,
            baseline,
            mode,
            ingresses,
            warmup,
            as_json,
            Path.cwd(),
            token=token,
            insecure=insecure,
            nodes=sizes,
            rounds=rounds,
            judge=judge,
            dates=dates,
            memories=_sizes(memories),
            snapstart=snapstart,
        )
    except IngressRefused as refused:
        where = refused.ingress if ingresses else "the local stack"
        if refused.certificate is not None:
            _fail(_unverified(where, refused.certificate))
        _fail(_unauthorized(where, token))
    except (ValueError, StackError) as err:
        _fail(str(err))
    click.echo(output)


@main.command()
@click.option(
    "--from",
    "source",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The output of `holiday bench --mode lambda --json` to take the Lambda counts from "
    "[default: a recorded measurement].",
)
@click.option(
    "--concurrency", type=click.IntRange(min=1), help="With --from: the run at this concurrency [default: the first]."
)
@click.option(
    "--trips", default=DEFAULT_VOLUMES, show_default=True, help="Trips a month; a comma-separated list prices each."
)
@click.option(
    "--memory",
    default=MEMORY_MB,
    show_default=True,
    type=click.IntRange(128, 10240),
    help="The functions' memory in MB; GB-seconds are scaled from the measured memory at the same billed time.",
)
@click.option(
    "--snapstart",
    is_flag=True,
    help="Price Lambda SnapStart: a cached snapshot per function, a restore per cold start.",
)
@click.option(
    "--cold-starts",
    default=DEFAULT_COLD_START_PERCENT,
    show_default=True,
    type=click.FloatRange(0, 100),
    help="With --snapstart: the percent of invocations that start a new execution environment (a restore).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def cost(
    source: Path | None,
    concurrency: int | None,
    trips: str,
    memory: int,
    snapstart: bool,
    cold_starts: float,
    as_json: bool,
) -> None:
    """What a million clean trips cost, and a month at each volume: this project on Lambda with Restate beside
    the same saga on Step Functions, at public us-east-1 prices."""
    try:
        output = run_cost_command(source, concurrency, parse_volumes(trips), memory, snapstart, cold_starts, as_json)
    except ValueError as err:
        _fail(str(err))
    click.echo(output)


def _cold_starts(count: int | None, against: Path | None, sizes: list[int]) -> None:
    """`holiday bench --cold-starts N [--against DIR] [--memory MB]`."""
    from holiday_tools.bench.coldstart import ColdStartError, format_inits, measure_inits

    if count is None:
        _fail("--against compares cold starts: give --cold-starts N too")
    if len(sizes) > 1:
        _fail("--cold-starts measures at one memory size: give --memory one size, or none for the deployed one")
    memory_mb = sizes[0] if sizes else MEMORY_MB
    try:
        inits = measure_inits(count, against, memory_mb, limit_cpu=True)
    except ColdStartError as err:
        _fail(str(err))
    click.echo(format_inits(inits, memory_mb))


def _sizes(memories: str) -> list[int]:
    """`512,1024` -> [512, 1024], or a usage error naming what is wrong."""
    try:
        return [int(mb) for mb in memories.split(",") if mb.strip()]
    except ValueError:
        _fail(f"--memory wants sizes in MB separated by commas, like 512,1024,1769; got {memories!r}")


@main.command()
@click.option("--trip-id", help="Your own trip id (1-64 of A-Z a-z 0-9 _ -); a new one by default.")
@click.option("--run-type", type=click.Choice([r.value for r in RunType]), help="Inject this failure.")
@click.option("--idempotency-key", help="Repeat-safe call: the same key returns the same answer.")
@ingress_option
@token_option
@insecure_option
def reserve(
    trip_id: str | None,
    run_type: str | None,
    idempotency_key: str | None,
    ingress: str,
    token: str | None,
    insecure: bool,
) -> None:
    """Book a trip through the ingress and print the outcome."""
    # The trip's id is ours, so that a refused trip's record can be read: a repeat with the same idempotency
    # key (whose answer is the first call's) asks about the same trip.
    trip_id = trip_id or str(uuid.uuid5(TRIP_IDS, idempotency_key) if idempotency_key else uuid.uuid4())
    with Ingress(ingress, token, insecure) as api:
        asked = RunType(run_type) if run_type else None
        response = _answer(api, lambda: api.reserve(trip_id, asked, idempotency_key=idempotency_key))
        if response.status_code == 200:
            out = response.json()
            click.echo(f"Trip {out['trip_id']} is booked.")
            click.echo(f"  flight booking  {out['flight_booking_id']}")
            click.echo(f"  car booking     {out['car_booking_id']}")
            click.echo(f"  payment         {out['payment_id']}")
            return
        record = _answer(api, lambda: _record(api, trip_id)) if response.status_code == FAILED_TRIP_STATUS else None
    if record is not None and record.status == "failed":
        why = (failure_reason(record) or "it was stopped").rstrip(".")
        _fail(f"Trip {record.trip_id} was not booked: {why}. Compensated: {', '.join(undone(record)) or 'nothing'}.")
    _fail(f"Trip not booked (HTTP {response.status_code}): {message(response)}")


@main.command()
@click.argument("trip_id")
@click.option("--json", "as_json", is_flag=True, help="Print the raw record.")
@ingress_option
@token_option
@insecure_option
def trip(trip_id: str, as_json: bool, ingress: str, token: str | None, insecure: bool) -> None:
    """Show a trip: each step with its id and status, the compensations, the outcome."""
    with Ingress(ingress, token, insecure) as api:
        response = _answer(api, lambda: api.status(trip_id))
    if response.status_code != 200:
        _fail(f"HTTP {response.status_code}: {message(response)}")
    record = response.json()
    if as_json:
        click.echo(json.dumps(record, indent=2))
        return
    click.echo(f"Trip {record['trip_id']}: {record['status']}")
    if record.get("run_type"):
        click.echo(f"  injected failure: {record['run_type']}")
    click.echo("  steps:")
    for step in record["steps"]:
        click.echo(_step(step))
    if record["compensations"]:
        click.echo("  compensations (in the order run):")
        for step in record["compensations"]:
            click.echo(_step(step))
    # The record's error repeats the failed step's; it says more only when no step failed (a cancel).
    if record.get("error") and not any(s.get("error") for s in record["steps"] + record["compensations"]):
        click.echo("\n".join(wrap(f"  error: {record['error']}", "         ")))


def _step(step: dict[str, Any]) -> str:
    """The step's line, and its error wrapped beneath it."""
    line = f"    {step['name']:<18} {step['status']:<9} {step.get('id') or ''}".rstrip()
    under = " " * 23  # the status column
    return "\n".join([line, *wrap(step.get("error") or "", under, under)])


def _record(api: Ingress, trip_id: str) -> TripRecord | None:
    """The trip's record; None if the ingress has none to give."""
    try:
        return api.record(trip_id)
    except httpx.HTTPStatusError:
        return None


def _answer(api: Ingress, call: Callable[[], T]) -> T:
    """What `call` returns; one line of error instead if the ingress cannot be reached or it refuses us."""
    try:
        return call()
    except IngressRefused as refused:
        if refused.certificate is not None:
            _fail(_unverified(api.url, refused.certificate))
        _fail(_unauthorized(api.url, api.token))
    except httpx.HTTPError as err:
        try:
            url = str(err.request.url)  # the ingress and the path asked for
        except RuntimeError:
            url = api.url
        reason = str(err).rstrip(".") or type(err).__name__
        _fail(f"cannot reach the Restate ingress at {url}: {reason}. Is `make dev` running?")


def _unauthorized(ingress: str, token: str | None) -> str:
    """A 401, whether no key was sent or the one sent was refused (never shown: it is a secret)."""
    if token is None:
        return (
            f"the Restate ingress at {ingress} wants a key (HTTP 401): give it with --token or HOLIDAY_INGRESS_TOKEN "
            "(the ingress key of a self-hosted deployment, or a Restate Cloud API key)."
        )
    return (
        f"the Restate ingress at {ingress} refused the key (HTTP 401): check --token or HOLIDAY_INGRESS_TOKEN "
        "against the deployment's ingress key (or your Restate Cloud API key)."
    )


def _unverified(ingress: str, certificate: ssl.SSLCertVerificationError) -> str:
    """A certificate that cannot be verified: most likely the self-signed one of a self-hosted deployment."""
    why = certificate.verify_message or str(certificate)
    return (
        f"cannot verify the TLS certificate of the Restate ingress at {ingress} ({why}). A default self-hosted "
        "deployment serves a self-signed certificate: add --insecure (or set HOLIDAY_INGRESS_INSECURE=1) to "
        "accept it, as curl -k does."
    )


def _fail(message: str) -> NoReturn:
    """One error, wrapped to fit; exit 1."""
    click.echo("\n".join(wrap(f"error: {message}", " " * len("error: "))), err=True)
    raise SystemExit(1)


if __name__ == "__main__":
    main()
