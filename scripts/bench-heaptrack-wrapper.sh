#!/bin/bash
# Run a benchmark's daemon under heaptrack, keeping its pid, for
# `BENCH_DAEMON_WRAPPER` (benches/common/daemon.rs):
#
#   BENCH_DAEMON_WRAPPER=scripts/bench-heaptrack-wrapper.sh \
#     ARAUTO_BENCH_STORES=10000 ARAUTO_BENCH_PLATFORMS=loja-integrada cargo bench --bench poll_cost
#
# The daemon `exec`s in place with heaptrack's preload library, and
# heaptrack's interpreter reads its events from a FIFO, so the benchmark
# still sees the daemon's own pid (READY, RSS, CPU). Each daemon writes
# $HEAPTRACK_DIR/heaptrack.<pid>.zst (default /tmp) and logs a copy of its
# stderr next to it; SIGKILL the daemon at the moment of interest and
# `heaptrack_print --print-leaks 1 -f …` shows what was alive then
# (docs/BENCHMARKS.md, "Where a store's bytes go"). Paths are Debian 12's
# heaptrack package.
set -eu
dir=${HEAPTRACK_DIR:-/tmp}
lib=/usr/lib/heaptrack/libheaptrack_preload.so
interpret=/usr/lib/heaptrack/libexec/heaptrack_interpret
pipe="$dir/heaptrack.$$.fifo"
mkfifo "$pipe"
( "$interpret" < "$pipe" | zstd -q -c > "$dir/heaptrack.$$.zst"; rm -f "$pipe" ) &
exec env LD_PRELOAD="$lib" DUMP_HEAPTRACK_OUTPUT="$pipe" "$@" 2> >(tee "$dir/heaptrack.$$.log" >&2)
