#!/bin/bash
# Boots the single Restate node of RestateStack (Amazon Linux 2023, arm64).
#  1. attaches the data volume (waiting while a replaced instance still holds it), formats it once, mounts it;
#  2. writes the configuration of restate-server, the trace collector and nginx (infra/host/config.py);
#  3. runs each in Docker under systemd: Restate only once its data volume is mounted, its log in
#     CloudWatch, its traces to X-Ray, and nginx in front of its ingress: it checks the ingress key (copied
#     from Secrets Manager now and every minute by a timer) and ends TLS on 443, unless a load balancer does.
# The placeholders between at-signs are filled in by infra/host/config.py; cloud-init runs this once per
# instance, and any change to it replaces the instance (RestateHost sets user_data_causes_replacement).
set -euo pipefail

VOLUME_ID='@VOLUME_ID@'
LOG_GROUP='@LOG_GROUP@'
DATA_MOUNT='@DATA_MOUNT@'
ATTACH_DEADLINE_S=1800  # a replaced instance lets go of the volume when CloudFormation ends the update

# retry TRIES COMMAND...: run COMMAND until it succeeds, at most TRIES times, 5 s apart.
retry() {
  local tries=$1 n=1
  shift
  until "$@"; do
    if [ "$n" -ge "$tries" ]; then
      echo "giving up after $n attempts: $*" >&2
      return 1
    fi
    n=$((n + 1))
    sleep 5
  done
}

imds() {
  local token
  token=$(curl -fsS --retry 5 -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
  curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
INSTANCE_ID=$(imds instance-id)
REGION=$(imds placement/region)

# 1. Data volume. CloudFormation starts a replacement instance before it ends the old one,
#    so the attach is retried until the old instance has let go of the volume, or the deadline.
started=$SECONDS
until error=$(aws ec2 attach-volume --region "$REGION" --volume-id "$VOLUME_ID" \
      --instance-id "$INSTANCE_ID" --device /dev/sdf 2>&1 >/dev/null); do
  if [ $((SECONDS - started)) -ge "$ATTACH_DEADLINE_S" ]; then
    echo "could not attach $VOLUME_ID within ${ATTACH_DEADLINE_S}s: $error" >&2
    exit 1
  fi
  echo "waiting to attach $VOLUME_ID: $error" >&2
  sleep 10
done
SERIAL=${VOLUME_ID//-/}
DEVICE=""
for _ in $(seq 1 90); do
  DEVICE=$(readlink -f "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$SERIAL" || true)
  [ -b "$DEVICE" ] && break
  sleep 2
done
if [ ! -b "$DEVICE" ]; then
  echo "$VOLUME_ID is attached but its device never appeared" >&2
  exit 1
fi
blkid "$DEVICE" >/dev/null || mkfs.xfs "$DEVICE"
mkdir -p "$DATA_MOUNT"
mountpoint -q "$DATA_MOUNT" || mount "$DEVICE" "$DATA_MOUNT"
# nofail: a missing volume must not stop the boot; Restate's unit refuses to start without it.
grep -q " $DATA_MOUNT " /etc/fstab || \
  echo "UUID=$(blkid -s UUID -o value "$DEVICE") $DATA_MOUNT xfs defaults,nofail 0 2" >> /etc/fstab

retry 10 dnf install -y docker
systemctl enable --now docker

# 2. Configuration.
mkdir -p @CONFIG_DIRS@
@CONFIG_FILES@
@TLS_SETUP@

# 3. The containers, as systemd units.
@UNIT_FILES@
systemctl daemon-reload@PROVISION@
systemctl enable --now @UNITS@@PROVISIONED@
