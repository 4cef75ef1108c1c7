#!/usr/bin/env bash
# `make bench`: every benchmark the project ships, release builds, one after
# another, each printing what it measured, on what, and against which
# baseline or target. The output is also kept in target/bench/.
#
#   BENCH_QUICK=1 scripts/bench.sh        a shorter run (smaller sizes, noisier)
#   scripts/bench.sh poll_cost latency    only these benchmarks
#
# Benchmark files go under target/bench-work (ARAUTO_BENCH_DIR to move them;
# keep them on the disk the daemon would use, not tmpfs).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

CARGO=${CARGO:-cargo}
ALL="queue plugin_call poll_cost startup latency push_latency peer burst cluster"
BENCHES=${*:-$ALL}

mkdir -p target/bench
REPORT="target/bench/report-$(date -u +%Y%m%dT%H%M%SZ).txt"
exec > >(tee "$REPORT") 2>&1

echo "arauto benchmarks — $(git describe --always --dirty 2>/dev/null || echo unknown), $(date -u '+%Y-%m-%d %H:%M UTC')"
if [ -n "${BENCH_QUICK:-}" ] && [ "${BENCH_QUICK}" != 0 ]; then
    echo "BENCH_QUICK=1: shorter run, smaller sizes"
fi
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other users of this machine count too)"

args=()
for bench in $BENCHES; do args+=(--bench "$bench"); done
"$CARGO" bench --locked --no-run "${args[@]}"

started=$(date +%s)
failed=()
for bench in $BENCHES; do
    if ! "$CARGO" bench --locked --bench "$bench" 2> >(grep -v -e '^ *Finished' -e '^ *Running' >&2); then
        failed+=("$bench")
    fi
done
echo
echo "all benchmarks took $(( $(date +%s) - started )) s; load average now $(cut -d' ' -f1-3 /proc/loadavg); report: $REPORT"
if [ ${#failed[@]} -gt 0 ]; then
    echo "FAILED: ${failed[*]}" >&2
    exit 1
fi
