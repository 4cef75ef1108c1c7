#!/usr/bin/env bash
# `make demo`: the daemon against the bundled Loja Integrada simulator, printing
# what it sends.
#
# Starts arauto-sim (a fake Loja Integrada API on 127.0.0.1:18931 whose orders
# move through a three-minute story and which pushes each change to the webhooks
# registered with it, and a fake Evolution API WhatsApp gateway on
# 127.0.0.1:18932 that prints every message it receives), then
# `arauto run --config config/demo.toml` with its state in a temporary directory,
# and registers the daemon's push listener (127.0.0.1:18933) with the fake store
# as an operator would: `arauto webhooks register`. Ctrl-C stops both cleanly.
# The daemon's log is kept in the temporary directory.
#
# DEMO_PLATFORM picks the store: `li` (the default), `nuvemshop` (a fake
# Nuvemshop API on 127.0.0.1:18935 playing its own story, store `nuvem1` from
# config/demo-nuvemshop.toml; needs target/plugins/nuvemshop.wasm), or `both`
# (both stories at once, one WhatsApp sink). For Nuvemshop the configuration is
# config/demo.toml with config/demo-nuvemshop.toml appended, written to the
# temporary directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
ARAUTO=$TARGET_DIR/debug/arauto
SIM=$TARGET_DIR/debug/arauto-sim
SPEED=${DEMO_SPEED:-1}
PLATFORM=${DEMO_PLATFORM:-li}
case "$PLATFORM" in
    li) STORES="loja1"; PORTS="18931 18932 18933" ;;
    nuvemshop) STORES="nuvem1"; PORTS="18931 18932 18933 18935" ;;
    both) STORES="loja1 nuvem1"; PORTS="18931 18932 18933 18935" ;;
    *)
        echo "demo: DEMO_PLATFORM must be li, nuvemshop or both (got \"$PLATFORM\")" >&2
        exit 2
        ;;
esac
if [ "$PLATFORM" != li ] && [ ! -f "$TARGET_DIR/plugins/nuvemshop.wasm" ]; then
    echo "demo: $TARGET_DIR/plugins/nuvemshop.wasm is missing; build it with make plugins" >&2
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/arauto-demo.XXXXXX")
CONFIG=config/demo.toml
if [ "$PLATFORM" != li ]; then
    CONFIG=$WORK/demo.toml
    if [ "$PLATFORM" = nuvemshop ]; then
        # loja1 stays configured (and validated) but is not polled.
        sed '/^\[stores\.loja1\]$/,/^enabled = true$/ s/^enabled = true$/enabled = false/' \
            config/demo.toml >"$CONFIG"
    else
        cp config/demo.toml "$CONFIG"
    fi
    { echo; cat config/demo-nuvemshop.toml; } >>"$CONFIG"
fi
SIM_PID=""
DAEMON_PID=""

stop() {
    trap - INT TERM EXIT
    echo
    echo "demo: stopping…"
    [ -n "$DAEMON_PID" ] && kill -TERM "$DAEMON_PID" 2>/dev/null || true
    [ -n "$DAEMON_PID" ] && wait "$DAEMON_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && kill -TERM "$SIM_PID" 2>/dev/null || true
    [ -n "$SIM_PID" ] && wait "$SIM_PID" 2>/dev/null || true
    echo "demo: stopped. The daemon's log and state are in $WORK"
    echo "      (e.g. ARAUTO_DAEMON__STATE_DIR=$WORK/state $ARAUTO report --config $CONFIG)"
    exit 0
}
trap stop INT TERM EXIT

for port in $PORTS; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "demo: 127.0.0.1:$port is already in use (another demo running?)" >&2
        trap - EXIT
        exit 1
    fi
done

"$SIM" --platform "$PLATFORM" --speed "$SPEED" --push --ready-file "$WORK/sim.ready" &
SIM_PID=$!
for _ in $(seq 1 100); do
    [ -f "$WORK/sim.ready" ] && break
    kill -0 "$SIM_PID" 2>/dev/null || { echo "demo: the simulator failed to start" >&2; exit 1; }
    sleep 0.1
done

export ARAUTO_DAEMON__STATE_DIR="$WORK/state"
export ARAUTO_DAEMON__CACHE_DIR="$WORK/cache"
export ARAUTO_DAEMON__CONTROL_SOCKET="$WORK/control.sock"
"$ARAUTO" validate --config "$CONFIG" >/dev/null
"$ARAUTO" run --config "$CONFIG" --log-format text >"$WORK/arauto.log" 2>&1 &
DAEMON_PID=$!

# Pushes need the daemon's listener up before LI is told about it.
for _ in $(seq 1 150); do
    (exec 3<>/dev/tcp/127.0.0.1/18933) 2>/dev/null && break
    kill -0 "$DAEMON_PID" 2>/dev/null || break
    sleep 0.2
done
PUSHES="each change is pushed to the daemon, so its message follows within a second or two"
for STORE in $STORES; do
    HOOK_URL=http://127.0.0.1:18933/hooks/$STORE
    if ! "$ARAUTO" webhooks register --config "$CONFIG" --store "$STORE" --url "$HOOK_URL" \
        >"$WORK/webhooks-register-$STORE.log" 2>&1; then
        echo "demo: could not register $HOOK_URL for pushes (see $WORK/webhooks-register-$STORE.log);" >&2
        echo "      $STORE's messages still arrive, at the next poll (every 30 s)." >&2
        PUSHES="pushes are partly off, the daemon also polls every 30 s"
    fi
done
echo "demo: arauto is running (pid $DAEMON_PID, log: $WORK/arauto.log); messages appear below as the"
echo "      simulated orders move ($PUSHES). Ctrl-C stops everything."
echo

# Keep going until Ctrl-C, or until one of the two exits on its own.
while kill -0 "$SIM_PID" 2>/dev/null && kill -0 "$DAEMON_PID" 2>/dev/null; do
    sleep 1
done
if ! kill -0 "$DAEMON_PID" 2>/dev/null; then
    echo "demo: arauto exited unexpectedly; its log:" >&2
    tail -n 30 "$WORK/arauto.log" >&2
fi
stop
