#!/bin/bash
# Boots a Restate host of RestateStack (Amazon Linux 2023, arm64): the single node, or one node of a cluster.
# Its Auto Scaling group of one runs it on every new instance: the first, one that replaces a host that died,
# and each step of a rolling update. In this order, so that the slow part runs while a predecessor may still
# hold the data:
#  1. installs Docker, CloudFormation's helper scripts and the CloudWatch agent, sends this boot's output and
#     the host's units' journal to the log group, and pulls the images;
#  2. writes the configuration of restate-server, the trace collector and nginx (infra/host/config.py), and
#     the systemd units that run them (the ingress key is copied from Secrets Manager now and every minute);
#  3. attaches the node's own network interface (its fixed private address, and a single node's Elastic IP)
#     and its data volume, each once a predecessor has let go of it; formats the volume once, mounts it;
#  4. starts the units, waits until restate-ready says this node serves (in a cluster: every node alive and
#     every partition replicated again), and only then signals CloudFormation that the host is healthy.
# Whatever fails or runs out of time is signalled as a failure, with the reason, so an update rolls back
# instead of reporting success without Restate. The placeholders between at-signs are filled in by
# infra/host/config.py; any change to this script makes a new launch template version, which the group
# rolls out one instance at a time.
set -eEuo pipefail

VOLUME_ID='@VOLUME_ID@'
LOG_GROUP='@LOG_GROUP@'
DATA_MOUNT='@DATA_MOUNT@'
NODE_INTERFACE='@NODE_INTERFACE@'  # the node's network interface, which holds its fixed private address:
NODE_ADDRESS='@NODE_ADDRESS@'
SIGNAL_STACK='@SIGNAL_STACK@'
SIGNAL_RESOURCE='@SIGNAL_RESOURCE@'
# A predecessor being replaced lets go of the interface and the volume once it has stopped; past this, the
# update is failed (the wait goes on, so a host that replaced a dead one still starts once they free up).
ATTACH_DEADLINE_S=900
READY_DEADLINE_S=900  # from the start of Restate to ready: a cluster node catches up meanwhile
signalled=""

# retry TRIES COMMAND...: run COMMAND until it succeeds, at most TRIES times, 5 s apart.
retry() {
  local tries=$1 n=1
  shift
  until "$@"; do
    if [ "$n" -ge "$tries" ]; then
      signal FAILURE "giving up after $n attempts: $*"
      return 1
    fi
    n=$((n + 1))
    sleep 5
  done
}

# signal SUCCESS|FAILURE REASON: tell CloudFormation, once; a host with nothing waiting for it just logs it.
signal() {
  [ -z "$signalled" ] || return 0
  signalled=$1
  echo "signalling $1 to CloudFormation ($SIGNAL_STACK $SIGNAL_RESOURCE): $2" >&2
  /opt/aws/bin/cfn-signal --exit-code "$([ "$1" = SUCCESS ] && echo 0 || echo 1)" --reason "$2" \
    --stack "$SIGNAL_STACK" --resource "$SIGNAL_RESOURCE" --region "$REGION" ||
    echo "no signal sent (nothing waits for one outside a create or update)" >&2
}

failed() {
  local status=$? line=$1 command=$2
  signal FAILURE "boot script line $line failed (exit $status): ${command%%$'\n'*}"
  exit "$status"
}

imds() {
  local token
  token=$(curl -fsS --retry 5 -X PUT http://169.254.169.254/latest/api/token \
    -H 'X-aws-ec2-metadata-token-ttl-seconds: 60')
  curl -fsS --retry 5 -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}
INSTANCE_ID=$(imds instance-id)
REGION=$(imds placement/region)
trap 'failed "$LINENO" "$BASH_COMMAND"' ERR

# 1. Packages, logs and images, before anything waits for the volume.
retry 10 dnf install -y docker aws-cfn-bootstrap amazon-cloudwatch-agent
mkdir -p @CONFIG_DIRS@
@LOG_SHIPPING@
systemctl enable --now docker
for image in @IMAGES@; do
  retry 10 docker pull --quiet "$image"
done

# 2. Configuration and units (started in step 4).
@CONFIG_FILES@
@TLS_SETUP@
@UNIT_FILES@
systemctl daemon-reload

# 3. The node's network interface (the other nodes and the registration find it at a private name of its
#    fixed address; a single node's Elastic IP is on it too) and its data volume, each attached once a
#    predecessor has let go of it.
# take_over WHAT COMMAND...: run the attach COMMAND until it succeeds; fail the update after the deadline.
take_over() {
  local what=$1 started=$SECONDS error
  shift
  until error=$("$@" 2>&1 >/dev/null); do
    if [ $((SECONDS - started)) -ge "$ATTACH_DEADLINE_S" ]; then
      signal FAILURE "could not attach $what within ${ATTACH_DEADLINE_S}s: $error"
    fi
    echo "waiting to attach $what: $error" >&2
    sleep 10
  done
}
take_over "$NODE_INTERFACE" aws ec2 attach-network-interface --region "$REGION" \
  --network-interface-id "$NODE_INTERFACE" --instance-id "$INSTANCE_ID" --device-index 1
# Amazon Linux configures an attached interface by itself (amazon-ec2-net-utils), routing included.
for _ in $(seq 1 60); do
  ip -o -4 address show | grep -q " $NODE_ADDRESS/" && break
  sleep 2
done
if ! ip -o -4 address show | grep -q " $NODE_ADDRESS/"; then
  signal FAILURE "$NODE_INTERFACE is attached but its address $NODE_ADDRESS never appeared"
  exit 1
fi
take_over "$VOLUME_ID" aws ec2 attach-volume --region "$REGION" --volume-id "$VOLUME_ID" \
  --instance-id "$INSTANCE_ID" --device /dev/sdf
SERIAL=${VOLUME_ID//-/}
DEVICE=""
for _ in $(seq 1 90); do
  DEVICE=$(readlink -f "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_$SERIAL" || true)
  [ -b "$DEVICE" ] && break
  sleep 2
done
if [ ! -b "$DEVICE" ]; then
  signal FAILURE "$VOLUME_ID is attached but its device never appeared"
  exit 1
fi
blkid "$DEVICE" >/dev/null || mkfs.xfs "$DEVICE"
mkdir -p "$DATA_MOUNT"
mountpoint -q "$DATA_MOUNT" || mount "$DEVICE" "$DATA_MOUNT"
# nofail: a missing volume must not stop the boot; Restate's unit refuses to start without it.
grep -q " $DATA_MOUNT " /etc/fstab || \
  echo "UUID=$(blkid -s UUID -o value "$DEVICE") $DATA_MOUNT xfs defaults,nofail 0 2" >> /etc/fstab

# 4. Start, wait until this node serves, then signal.@PROVISION@
systemctl enable --now @UNITS@@PROVISIONED@
started=$SECONDS
until why=$(@READY@ 2>&1); do
  if [ $((SECONDS - started)) -ge "$READY_DEADLINE_S" ]; then
    journalctl -u restate.service -n 30 --no-pager >&2 || true
    signal FAILURE "Restate was not ready within ${READY_DEADLINE_S}s: $why"
    exit 1
  fi
  sleep 5
done
signal SUCCESS "Restate is ready on $INSTANCE_ID"
