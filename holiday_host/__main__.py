"""Print the host's boot script for one TLS mode, with sample ids: `python -m holiday_host self-signed | shellcheck -`.

`--node N` prints node N's script of a three-node cluster instead of the single node's.
"""

from __future__ import annotations

import sys
from typing import get_args

from holiday_host.config import Cluster, Signal, TlsMode, boot_script

SAMPLE_VOLUME = "vol-0123456789abcdef0"
SAMPLE_LOG_GROUP = "/restate/restate"
SAMPLE_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:IngressKey-AbCdEf"
SAMPLE_INTERFACE = "eni-0123456789abcdef0"
SAMPLE_ADDRESS = "10.0.0.228"
SAMPLE_SIGNAL = Signal("RestateStack", "RestateNode1A1B2C3D4")
SAMPLE_CLUSTER = Cluster(
    peers=tuple(f"http://node-{n}.restate-holiday-restate.internal:5122" for n in (1, 2, 3)),
    snapshots="s3://restatestack-restatesnapshots-0123456789ab/snapshots",
)


def main(argv: list[str]) -> None:
    modes: tuple[TlsMode, ...] = get_args(TlsMode)
    nodes = [str(n) for n in range(1, len(SAMPLE_CLUSTER.peers) + 1)]
    chosen = [mode for mode in modes if argv[:1] == [mode]]
    node = argv[1:] if len(argv) == 3 and argv[1] == "--node" and argv[2] in nodes else None
    if not chosen or len(argv) != (1 if node is None else 3):
        sys.exit(f"usage: python -m holiday_host {{{'|'.join(modes)}}} [--node {{{'|'.join(nodes)}}}]")
    sys.stdout.write(
        boot_script(
            tls=chosen[0],
            ingress_key_secret=SAMPLE_SECRET,
            volume_id=SAMPLE_VOLUME,
            log_group=SAMPLE_LOG_GROUP,
            interface=SAMPLE_INTERFACE,
            address=SAMPLE_ADDRESS,
            signal=SAMPLE_SIGNAL,
            cluster=None if node is None else SAMPLE_CLUSTER,
            index=0 if node is None else int(node[1]) - 1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
