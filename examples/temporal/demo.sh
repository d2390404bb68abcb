#!/usr/bin/env bash
# make demo-temporal: procure-to-pay on a real Temporal dev server, governed by Tollgate (issue 18).
#
# Starts, on loopback, the Temporal dev server ($TEMPORAL_CLI, built by `make temporal-cli`), Tollgate
# on its embedded defaults and the example's worker, runs N (default 100) workflows with the starter,
# shows one workflow's decisions with `tollgatectl audit list --workflow`, verifies the audit log,
# and stops everything it started, by pid. Its files (Temporal's database, Tollgate's data directory,
# the logs) are in .bin/demo-temporal/, replaced at each run and kept afterwards for a look.
#
# Settings (environment): N, SEED, TEMPORAL_PORT (7233), TOLLGATE_ADDR (127.0.0.1:7170),
# TOLLGATE_HTTP_ADDR (127.0.0.1:7171), FAIL_AFTER_DECIDE (0.1: that share of decisions fails once
# after Tollgate answered, so Temporal retries it and gets a replay).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"

temporal=${TEMPORAL_CLI:?set TEMPORAL_CLI to the Temporal CLI (make temporal-cli builds it)}
n=${N:-100}
seed=${SEED:-1}
temporal_port=${TEMPORAL_PORT:-7233}
export TOLLGATE_ADDR=${TOLLGATE_ADDR:-127.0.0.1:7170}
tollgate_http=${TOLLGATE_HTTP_ADDR:-127.0.0.1:7171}
fail_share=${FAIL_AFTER_DECIDE:-0.1}
bin=$root/.bin
state=$bin/demo-temporal

echo "== building Tollgate, tollgatectl and the example's worker and starter"
go build -o "$bin/" ./cmd/tollgate ./cmd/tollgatectl
(cd examples/temporal && go build -o "$bin/p2p-worker" ./cmd/worker && go build -o "$bin/p2p-starter" ./cmd/starter)

rm -rf "$state"
mkdir -p "$state"
pids=()
stop_all() {
  local pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
}
trap stop_all EXIT

# wait_for NAME SECONDS COMMAND...: retries COMMAND once a second until it succeeds.
wait_for() {
  local name=$1 seconds=$2
  shift 2
  for _ in $(seq "$seconds"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "$name did not come up in ${seconds}s; its log is in $state" >&2
  return 1
}

echo "== starting the Temporal dev server on 127.0.0.1:$temporal_port (log: $state/temporal.log)"
"$temporal" server start-dev --headless --ip 127.0.0.1 --port "$temporal_port" \
  --db-filename "$state/temporal.db" --log-level warn >"$state/temporal.log" 2>&1 &
pids+=($!)
wait_for "Temporal" 60 "$temporal" operator cluster health --address "127.0.0.1:$temporal_port"

echo "== starting Tollgate on $TOLLGATE_ADDR (log: $state/tollgate.log)"
"$bin/tollgate" serve --addr "$TOLLGATE_ADDR" --http-addr "$tollgate_http" \
  --data-dir "$state/tollgate-data" >"$state/tollgate.log" 2>&1 &
pids+=($!)
wait_for "Tollgate" 60 "$bin/tollgatectl" masterdata status

echo "== starting the worker (log: $state/worker.log)"
"$bin/p2p-worker" --temporal "127.0.0.1:$temporal_port" --fail-after-decide "$fail_share" >"$state/worker.log" 2>&1 &
pids+=($!)

echo "== running $n workflows"
run=demo$(date +%H%M%S)
"$bin/p2p-starter" -n "$n" --seed "$seed" --run "$run" --temporal "127.0.0.1:$temporal_port" | tee "$state/outcomes.txt"

# A workflow that waited for approvals shows the loop best.
wf=$(awk '/approved by/ {print $1; exit}' "$state/outcomes.txt")
wf=${wf:-p2p-$run-001}
echo
echo "== tollgatectl audit list --workflow $wf"
"$bin/tollgatectl" audit list --workflow "$wf"
echo
echo "== tollgatectl audit verify"
"$bin/tollgatectl" audit verify
echo
echo "Stopping Temporal, Tollgate and the worker. The decisions stay in $state/tollgate-data; to look again:"
echo "  .bin/tollgate serve --data-dir $state/tollgate-data --addr $TOLLGATE_ADDR --http-addr $tollgate_http &"
echo "  TOLLGATE_ADDR=$TOLLGATE_ADDR .bin/tollgatectl audit list --workflow $wf"
