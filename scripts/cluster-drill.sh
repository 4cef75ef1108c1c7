#!/usr/bin/env bash
# A longer cluster drill than CI runs: three arauto nodes on a three-server
# NATS JetStream cluster (127.0.0.1), orders moving continuously in the fake
# Loja Integrada; a random node is SIGKILLed KILLS times (and restarted), a
# nats-server every fifth kill. tests/drill_cluster.rs explains what is
# checked. The last line is the result:
#
#   kills=N lost=0 planned_twice=0 provider_repeats=K failover_max=Xs
#
#   scripts/cluster-drill.sh            # 100 kills
#   scripts/cluster-drill.sh 200        # 200 kills
#   scripts/cluster-drill.sh 100 SEED   # replay the kill timing of an earlier run
#
# Runs the nats-server NATS_SERVER_BIN names (>= 2.9.10), else the
# pinned 2.12.8 (scripts/install-nats-server.sh installs it when missing).
# Builds the plugins and the daemon first (debug build, shared with
# `make test`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

KILLS=${1:-100}
SEED=${2:-}
case "$KILLS" in
    ''|*[!0-9]*) echo "usage: $0 [KILLS] [SEED]" >&2; exit 2 ;;
esac
if [ -z "${NATS_SERVER_BIN:-}" ]; then
    NATS_SERVER_BIN=$(scripts/install-nats-server.sh)
    export NATS_SERVER_BIN
fi
echo "cluster-drill.sh: $("$NATS_SERVER_BIN" --version) ($NATS_SERVER_BIN), $(git describe --always --dirty 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')" >&2

scripts/build-plugins.sh >/dev/null
export ARAUTO_CLUSTER_DRILL_KILLS="$KILLS"
if [ -n "$SEED" ]; then
    export ARAUTO_DRILL_SEED="$SEED"
fi
started=$(date +%s)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
cargo test --locked --test integration -- --nocapture --test-threads 1 drill_cluster:: | tee "$out" || status=$?
echo "cluster-drill.sh: $KILLS kills, $(( $(date +%s) - started )) s wall time including the build" >&2
result=$(grep -oE 'kills=[0-9]+ lost=[0-9]+ planned_twice=[0-9]+ provider_repeats=[0-9]+ failover_max=[0-9.]+s' "$out" | tail -n 1 || true)
if [ -n "$result" ]; then
    echo "$result"
fi
exit "$status"
