#!/usr/bin/env bash
# A Skiff cluster of N brokers on this machine, each its own process, like `rpk container start -n 3`.
#
#   deploy/local-cluster.sh up N [-- SKIFF-ARGS…]  start brokers 1..N (1 ≤ N ≤ 5), wait until all joined,
#                                                print the bootstrap list
#   deploy/local-cluster.sh down [--purge]       stop them (SIGTERM, clean shutdown); --purge removes their data
#   deploy/local-cluster.sh kill NODE            SIGKILL one broker (a crash)
#   deploy/local-cluster.sh stop NODE            SIGTERM one broker and wait for it
#   deploy/local-cluster.sh start NODE           start one broker again (same data, same settings)
#   deploy/local-cluster.sh pause NODE           SIGSTOP one broker (a hung process: alive, silent)
#   deploy/local-cluster.sh resume NODE          SIGCONT a paused broker
#   deploy/local-cluster.sh status               one line per broker
#   deploy/local-cluster.sh add                  start one more broker (node.id N+1, at most 9) that
#                                                joins the running cluster (not a controller voter)
#
# Broker i (node.id i) serves Kafka clients on localhost:<i>9092 (19092, 29092, …) and replicates on
# <i>9093; its data is in $SKIFF_CLUSTER_DIR/node-i (default ./local-cluster), its log in node-i.log.
# The binary is $SKIFF_BIN, else target/release/skiff (built when missing). SKIFF-ARGS after `--`
# go to every broker, e.g. `-- --set default.replication.factor=3 --set min.insync.replicas=2`.
set -euo pipefail
cd "$(dirname "$0")/.."

DIR=${SKIFF_CLUSTER_DIR:-./local-cluster}
MAX_NODES=5
# How long `up`/`start` wait for a broker to accept connections.
READY_TIMEOUT_S=${SKIFF_READY_TIMEOUT_S:-30}

die() { echo "local-cluster: $*" >&2; exit 2; }
kafka_port() { echo "${1}9092"; }
peer_port() { echo "${1}9093"; }
pid_of() { cat "$DIR/node-$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

binary() {
  if [ -n "${SKIFF_BIN:-}" ]; then
    [ -x "$SKIFF_BIN" ] || die "SKIFF_BIN=$SKIFF_BIN is not executable"
    echo "$SKIFF_BIN"
    return
  fi
  if [ ! -x target/release/skiff ]; then
    echo "local-cluster: building target/release/skiff" >&2
    cargo build --release -q -p skiff-broker >&2
  fi
  echo "target/release/skiff"
}

wait_ready() {
  local node=$1 deadline=$((SECONDS + READY_TIMEOUT_S))
  until (exec 3<>"/dev/tcp/127.0.0.1/$(kafka_port "$node")") 2>/dev/null; do
    alive "$node" || die "broker $node exited; see $DIR/node-$node.log"
    [ $SECONDS -lt $deadline ] || die "broker $node did not listen within ${READY_TIMEOUT_S}s; see $DIR/node-$node.log"
    sleep 0.1
  done
}

# A broker logs this once its registration is applied: it has then caught up with the
# cluster's metadata, and topics can be created with it counted as a live broker.
REGISTERED_LINE="registered with the controller"

wait_registered() {
  local node=$1 from=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
  until tail -n "+$((from + 1))" "$DIR/node-$node.log" 2>/dev/null | grep -q "$REGISTERED_LINE"; do
    alive "$node" || die "broker $node exited; see $DIR/node-$node.log"
    [ $SECONDS -lt $deadline ] || die "broker $node did not join the cluster within ${READY_TIMEOUT_S}s; see $DIR/node-$node.log"
    sleep 0.1
  done
}

log_lines() { if [ -f "$DIR/node-$1.log" ]; then wc -l <"$DIR/node-$1.log"; else echo 0; fi; }

start_node() {
  local node=$1
  [ -f "$DIR/cluster.conf" ] || die "no cluster in $DIR (run: $0 up N)"
  # shellcheck source=/dev/null
  . "$DIR/cluster.conf"
  alive "$node" && die "broker $node is already running (pid $(pid_of "$node"))"
  # Another process on the port would answer wait_ready for a broker that failed to start.
  if (exec 3<>"/dev/tcp/127.0.0.1/$(kafka_port "$node")") 2>/dev/null; then
    die "port $(kafka_port "$node") is already in use (another cluster running?)"
  fi
  mkdir -p "$DIR/node-$node"
  local bin
  bin=$(binary)
  # How this broker reaches the voters: the cluster's list, unless node-N.voters gives it its
  # own (the tests route each pair of brokers through a proxy they can cut).
  local voters=$VOTERS
  if [ -f "$DIR/node-$node.voters" ]; then voters=$(cat "$DIR/node-$node.voters"); fi
  # shellcheck disable=SC2086
  # The registration line must be logged whatever RUST_LOG asks for (see wait_registered).
  RUST_LOG="${RUST_LOG:-info},skiff_broker::cluster=info" \
  "$bin" --node-id "$node" --data-dir "$DIR/node-$node" \
    --listen "0.0.0.0:$(kafka_port "$node")" --advertised "localhost:$(kafka_port "$node")" \
    --voters "$voters" --peer-listen "127.0.0.1:$(peer_port "$node")" $EXTRA_ARGS \
    >>"$DIR/node-$node.log" 2>&1 &
  echo $! >"$DIR/node-$node.pid"
  wait_ready "$node"
}

stop_node() {
  local node=$1 signal=$2 pid
  pid=$(pid_of "$node")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "-$signal" "$pid"
    # A paused broker handles SIGTERM only once it runs again.
    kill -CONT "$pid" 2>/dev/null || true
    # A clean shutdown flushes every log; give it time, then insist.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  fi
  rm -f "$DIR/node-$node.pid"
}

nodes() {
  # shellcheck source=/dev/null
  . "$DIR/cluster.conf"
  seq 1 "$NODES"
}

check_node() {
  [[ "$1" =~ ^[1-9]$ ]] || die "NODE must be a broker number, not '$1'"
  [ -f "$DIR/cluster.conf" ] || die "no cluster in $DIR"
  # shellcheck source=/dev/null
  . "$DIR/cluster.conf"
  [ "$1" -le "$NODES" ] || die "the cluster has $NODES brokers"
}

cmd=${1:-}
shift || true
case "$cmd" in
  up)
    n=${1:-3}
    shift || true
    [[ "$n" =~ ^[1-9]$ ]] && [ "$n" -le $MAX_NODES ] || die "N must be 1..$MAX_NODES"
    if [ "${1:-}" = "--" ]; then shift; fi
    mkdir -p "$DIR"
    for node in $(seq 1 "$n"); do
      alive "$node" && die "broker $node is already running; run: $0 down"
    done
    voters=""
    bootstrap=""
    for node in $(seq 1 "$n"); do
      voters+="${voters:+,}$node@127.0.0.1:$(peer_port "$node")"
      bootstrap+="${bootstrap:+,}localhost:$(kafka_port "$node")"
    done
    {
      echo "NODES=$n"
      echo "VOTERS='$voters'"
      printf "EXTRA_ARGS=%q\n" "$*"
    } >"$DIR/cluster.conf"
    declare -A from
    for node in $(seq 1 "$n"); do
      from[$node]=$(log_lines "$node")
      start_node "$node"
    done
    # Brokers register once a majority runs: wait for all, so that topics created right away
    # count every broker (no INVALID_REPLICATION_FACTOR from a cluster still forming).
    for node in $(seq 1 "$n"); do wait_registered "$node" "${from[$node]}"; done
    echo "$bootstrap"
    ;;
  down)
    [ -f "$DIR/cluster.conf" ] || { echo "local-cluster: nothing running in $DIR" >&2; exit 0; }
    for node in $(nodes); do stop_node "$node" TERM; done
    if [ "${1:-}" = "--purge" ]; then rm -rf "$DIR"; fi
    ;;
  kill) check_node "${1:-}"; stop_node "$1" KILL ;;
  stop) check_node "${1:-}"; stop_node "$1" TERM ;;
  start)
    check_node "${1:-}"
    from=$(log_lines "$1")
    start_node "$1"
    # Back once it has caught up with the cluster's metadata (needs a majority of brokers).
    wait_registered "$1" "$from"
    ;;
  pause | resume)
    check_node "${1:-}"
    alive "$1" || die "broker $1 is not running"
    if [ "$cmd" = pause ]; then kill -STOP "$(pid_of "$1")"; else kill -CONT "$(pid_of "$1")"; fi
    ;;
  status)
    [ -f "$DIR/cluster.conf" ] || die "no cluster in $DIR"
    for node in $(nodes); do
      if alive "$node"; then state="running (pid $(pid_of "$node"))"; else state=stopped; fi
      echo "broker $node  localhost:$(kafka_port "$node")  $state"
    done
    ;;
  add)
    [ -f "$DIR/cluster.conf" ] || die "no cluster in $DIR (run: $0 up N)"
    # shellcheck source=/dev/null
    . "$DIR/cluster.conf"
    node=$((NODES + 1))
    [ "$node" -le 9 ] || die "at most 9 brokers (ports <i>9092)"
    # The controller voters stay those of `up`; the new broker follows the metadata log.
    sed -i "s/^NODES=.*/NODES=$node/" "$DIR/cluster.conf"
    from=$(log_lines "$node")
    start_node "$node"
    wait_registered "$node" "$from"
    echo "localhost:$(kafka_port "$node")"
    ;;
  *) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
