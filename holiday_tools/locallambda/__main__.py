"""`python -m holiday_tools.locallambda --port 9090 --function holiday-trips=holiday.functions.trips.app ...`"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from typing import NoReturn

from holiday_tools.locallambda.runtime import LocalLambda
from holiday_tools.locallambda.spec import FunctionSpec


def _stop(*_: object) -> NoReturn:
    # A second signal must not cut the cleanup short with a traceback.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9090)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per invocation, as on the function")
    parser.add_argument(
        "--memory", type=int, default=256, help="MB per function: reported to the handler, and with --limit-cpu its CPU"
    )
    parser.add_argument(
        "--limit-cpu",
        action="store_true",
        help="hold each worker to its function's share of a core, as Lambda does (1,769 MB: one vCPU); Linux cgroups",
    )
    parser.add_argument(
        "--snapstart",
        action="store_true",
        help="as Lambda SnapStart: import each version's handler once, fork its workers from it (Linux)",
    )
    parser.add_argument(
        "--max-workers", type=int, default=FunctionSpec.max_workers, help="per function (default: cores, at least 2)"
    )
    parser.add_argument(
        "--function", action="append", required=True, metavar="NAME=MODULE.ATTR", help="a function and its handler"
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        help="keep uploaded code and published versions here, for the next start (default: only while running)",
    )
    args = parser.parse_args(argv)
    if args.snapstart and sys.platform != "linux":
        parser.error("--snapstart forks workers that must die with their zygote, which needs Linux")
    specs = []
    for item in args.function:
        name, _, handler = item.partition("=")
        specs.append(FunctionSpec(name, handler, args.timeout, args.memory, args.max_workers))
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        runtime = LocalLambda(
            specs,
            args.host,
            args.port,
            args.region,
            state_dir=args.state_dir,
            limit_cpu=args.limit_cpu,
            snapstart=args.snapstart,
        )
        print(f"local Lambda on http://{args.host}:{args.port}: {', '.join(s.name for s in specs)}", flush=True)
        if args.limit_cpu and not runtime.cpu.limited:
            print(f"local Lambda: CPU is not limited: {runtime.cpu.note}", flush=True)
        try:
            runtime.serve_forever()
        finally:
            runtime.close()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
