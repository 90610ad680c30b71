#!/bin/bash
# restate-ingress-key SECRET_ID KEY_FILE [RELOAD_COMMAND...]
# Copies the ingress key from Secrets Manager into nginx's configuration on RestateStack's node, as
# `set $ingress_key "Bearer <key>";`, and runs RELOAD_COMMAND when the key changed. nginx's reload is
# graceful: requests in flight finish on the old workers. A systemd timer runs this every minute, so a
# rotated key takes effect within about a minute; nginx's unit runs it once before nginx starts.
# The key is never printed. A value that is not a usable bearer token is refused and the current key kept.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 SECRET_ID KEY_FILE [RELOAD_COMMAND...]" >&2
  exit 2
fi
secret=$1
key_file=$2
shift 2

key=$(aws secretsmanager get-secret-value --secret-id "$secret" --query SecretString --output text)
# A bearer token (RFC 6750: token68), long enough not to be guessed; nothing nginx would read as syntax.
if ! [[ $key =~ ^[A-Za-z0-9._~+/-]{32,512}=*$ ]]; then
  echo "the ingress key in $secret is not 32 to 512 of A-Z a-z 0-9 . _ ~ + / - (then any '='); keeping the current key" >&2
  exit 1
fi
line="set \$ingress_key \"Bearer $key\";"
if [ -f "$key_file" ] && [ "$(cat "$key_file")" = "$line" ]; then
  exit 0
fi
umask 077
fresh=$(mktemp "$key_file.XXXXXX")
printf '%s\n' "$line" > "$fresh"
mv -f "$fresh" "$key_file"
echo "the ingress key changed: $key_file written" >&2
if [ $# -gt 0 ]; then
  "$@"
fi
