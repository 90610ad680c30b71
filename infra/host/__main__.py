"""Print the host's boot script for one TLS mode, with sample ids: `python -m infra.host self-signed | shellcheck -`."""

from __future__ import annotations

import sys
from typing import get_args

from infra.host.config import TlsMode, boot_script

SAMPLE_VOLUME = "vol-0123456789abcdef0"
SAMPLE_LOG_GROUP = "/restate/restate"
SAMPLE_SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:IngressKey-AbCdEf"


def main(argv: list[str]) -> None:
    modes: tuple[TlsMode, ...] = get_args(TlsMode)
    chosen = [mode for mode in modes if argv == [mode]]
    if not chosen:
        sys.exit(f"usage: python -m infra.host {{{'|'.join(modes)}}}")
    sys.stdout.write(
        boot_script(
            tls=chosen[0], ingress_key_secret=SAMPLE_SECRET, volume_id=SAMPLE_VOLUME, log_group=SAMPLE_LOG_GROUP
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])
