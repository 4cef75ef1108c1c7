#!/usr/bin/env bash
# A longer crash drill than CI runs: SIGKILL the daemon KILLS times at random
# moments while orders change and messages flow (tests/drill_crash.rs explains
# what is checked), and print the result line.
#
#   scripts/crash-drill.sh            # 200 kills
#   scripts/crash-drill.sh 500        # 500 kills
#   scripts/crash-drill.sh 200 SEED   # replay the kill timing of an earlier run
#
# Builds the plugins and the daemon first (debug build, shared with `make test`).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

KILLS=${1:-200}
SEED=${2:-}
case "$KILLS" in
    ''|*[!0-9]*) echo "usage: $0 [KILLS] [SEED]" >&2; exit 2 ;;
esac

scripts/build-plugins.sh >/dev/null
export ARAUTO_DRILL_KILLS="$KILLS"
if [ -n "$SEED" ]; then
    export ARAUTO_DRILL_SEED="$SEED"
fi
started=$(date +%s)
cargo test --locked --test integration -- --nocapture --test-threads 1 drill_crash::
echo "crash-drill.sh: $KILLS kills, $(( $(date +%s) - started )) s wall time including the build"
