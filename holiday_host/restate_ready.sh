#!/bin/bash
# restate-ready: exit 0 once this node's Restate can take its share of the work; else exit 1 with
# one line on stderr saying what is not ready yet.
#
# The boot script runs it (installed as /usr/local/bin/restate-ready) before it tells CloudFormation
# that the host is healthy, and `holiday chaos --scenario rolling` runs this very file on loopback
# before it stops the next node. Ready means:
#  - the admin API and the ingress answer their health checks;
#  - in a cluster (RESTATE_NODES > 1), also: this node is alive with every role ready, every node
#    the cluster knows is alive, and every partition has one leader and a caught-up follower
#    (RESTATE_REPLICATION active copies). While a new cluster is still forming, with fewer nodes
#    than copies of a partition, nothing can be replicated yet: then this node alone counts.
#
# Where to look, from the environment (the defaults are the host's):
#   RESTATE_ADMIN, RESTATE_INGRESS, RESTATE_FABRIC: this node's admin API, ingress and fabric;
#   RESTATE_NODES: the cluster's size (1: a single node); RESTATE_REPLICATION: copies of a partition;
#   RESTATECTL: how to run restatectl (on the host, inside the Restate container).
set -euo pipefail

ADMIN=${RESTATE_ADMIN:-http://127.0.0.1:9070}
INGRESS=${RESTATE_INGRESS:-http://127.0.0.1:8080}
FABRIC=${RESTATE_FABRIC:-http://127.0.0.1:5122}
NODES=${RESTATE_NODES:-1}
REPLICATION=${RESTATE_REPLICATION:-2}
read -r -a RESTATECTL <<< "${RESTATECTL:-docker exec restate restatectl}"

not_ready() {
  echo "not ready: $*" >&2
  exit 1
}

answers() {
  curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null
}

answers "$ADMIN/health" || not_ready "the admin API at $ADMIN does not answer its health check"
answers "$INGRESS/restate/health" || not_ready "the ingress at $INGRESS does not answer its health check"
[ "$NODES" -gt 1 ] || exit 0

health=$(curl -fsS --max-time 5 "$FABRIC/health" 2>/dev/null) || not_ready "the node at $FABRIC does not answer"
for want in '"status":"Alive"' '"worker_status":"Ready"' '"log_server_status":"Ready"' \
  '"metadata_server_status":"Member"'; do
  [[ $health == *"$want"* ]] || not_ready "the node at $FABRIC is not yet $want"
done

# One row of counts, asked of this node: which nodes are alive, and which partitions are whole.
query="SELECT
  (SELECT COUNT(*) FROM nodes) AS members,
  (SELECT COUNT(*) FROM nodes WHERE state = 'alive') AS alive,
  (SELECT COUNT(*) FROM partitions) AS partitions,
  (SELECT COUNT(*) FROM (
    SELECT p.partition_id FROM partition_state p JOIN nodes n ON p.gen_node_id = n.gen_node_id
    WHERE n.state = 'alive' GROUP BY p.partition_id
    HAVING SUM(CASE WHEN LOWER(p.effective_mode) = 'leader' THEN 1 ELSE 0 END) = 1
      AND SUM(CASE WHEN p.replay_status = 'active' THEN 1 ELSE 0 END) >= $REPLICATION)) AS whole"
row=$("${RESTATECTL[@]}" --address "$FABRIC" sql --jsonl "$query" 2>&1 | grep '^{' | head -n 1) ||
  not_ready "restatectl could not read the cluster's state from $FABRIC"

count() {
  sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p" <<< "$row"
}
members=$(count members)
alive=$(count alive)
partitions=$(count partitions)
whole=$(count whole)
[ -n "$members" ] && [ -n "$alive" ] && [ -n "$partitions" ] && [ -n "$whole" ] ||
  not_ready "restatectl answered what this script cannot read: $row"
[ "$alive" -eq "$members" ] || not_ready "$alive of the $members nodes the cluster knows are alive"
[ "$members" -ge "$REPLICATION" ] || exit 0 # a cluster still forming: nothing can be replicated yet
[ "$partitions" -gt 0 ] || not_ready "the cluster has no partitions yet"
[ "$whole" -eq "$partitions" ] ||
  not_ready "$whole of $partitions partitions have a leader and $REPLICATION caught-up copies"
