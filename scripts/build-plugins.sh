#!/bin/sh
# Build WASM plugin components.
#
#   scripts/build-plugins.sh                 every first-party plugin  -> target/plugins/<name>.wasm
#   scripts/build-plugins.sh --test-plugins  the sandbox test plugins  -> target/test-plugins/<name>.wasm
#   scripts/build-plugins.sh [--test-plugins] NAME...   only these plugins
#
# Each plugin is a cdylib crate in plugins/<name>/ (or tests/plugins/<name>/)
# built for wasm32-unknown-unknown, then wrapped into a component by
# tools/componentize. Plugins are built one cargo invocation per SDK world:
# the SDK's `connector`/`sender` features are exclusive and cargo would unify
# them across one invocation, so every sender plugin is built in one, every
# connector in another (cargo then runs their link-time optimisations side
# by side), and a crate without the SDK on its own.
# Up-to-date plugins cost a cargo no-op and are not re-componentized, so
# tests can call this on every run.
#
# Uses the active toolchain when it has a prebuilt wasm32 std, otherwise
# Debian's rustc-web with -Zbuild-std (scripts/install-wasm-toolchain.sh).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=wasm32-unknown-unknown
WASM_TARGET_DIR="$ROOT/target/wasm"
# The componentizer gets its own target dir: this script also runs from inside
# `cargo test`/`cargo bench`, and must not wait on (or rebuild) their profile.
TOOLS_TARGET_DIR="$ROOT/target/tools"

case "${1:-}" in
    -h | --help)
        sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    --test-plugins)
        shift
        SRC="$ROOT/tests/plugins"
        OUT="$ROOT/target/test-plugins"
        ;;
    -*)
        echo "build-plugins: unknown option $1 (see --help)" >&2
        exit 2
        ;;
    *)
        SRC="$ROOT/plugins"
        OUT="$ROOT/target/plugins"
        ;;
esac
mkdir -p "$OUT"

# One build at a time: several test binaries (or a bench and `make plugins`)
# may start this concurrently, and they share target/wasm.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$ROOT/target/.build-plugins.lock"
    flock 9
fi

# Flags and targets meant for the daemon's build must not leak into the wasm
# build (and `cargo test` exports some of them to the processes it runs).
unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS CARGO_BUILD_RUSTFLAGS CARGO_BUILD_TARGET \
    CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR CARGO_MANIFEST_DIR CARGO_PRIMARY_PACKAGE 2>/dev/null || true

"$ROOT/scripts/install-wasm-toolchain.sh"

if libdir=$(rustc --print target-libdir --target "$TARGET" 2>/dev/null) &&
    ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
    build() { cargo build --quiet --release --target "$TARGET" --target-dir "$WASM_TARGET_DIR" "$@"; }
else
    build() {
        RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --quiet --release \
            --target "$TARGET" --target-dir "$WASM_TARGET_DIR" -Zbuild-std=std,panic_abort "$@"
    }
fi

# The componentizer is a host tool from the main workspace (pinned by its
# Cargo.lock), built with the dev profile: it compiles in half the CPU time
# of a release build, and wraps a plugin in well under a second all the same
# (the dev profile optimises wasmparser; the output is byte for byte the same).
cargo build --quiet --locked --manifest-path "$ROOT/Cargo.toml" \
    --target-dir "$TOOLS_TARGET_DIR" -p arauto-componentize
COMPONENTIZE="$TOOLS_TARGET_DIR/debug/arauto-componentize"

if [ "$#" -gt 0 ]; then
    NAMES="$*"
else
    NAMES=""
    for dir in "$SRC"/*/; do
        name=$(basename "$dir")
        [ -f "$dir/Cargo.toml" ] || continue
        grep -q 'cdylib' "$dir/Cargo.toml" || continue
        NAMES="$NAMES $name"
    done
fi
if [ -z "$NAMES" ]; then
    echo "build-plugins: no plugin crates (cdylib) in $SRC" >&2
    exit 0
fi

# shellcheck source=scripts/plugin-world.sh
. "$ROOT/scripts/plugin-world.sh"

WORLDS=""
for name in $NAMES; do
    [ -f "$SRC/$name/Cargo.toml" ] || { echo "build-plugins: no plugin crate $SRC/$name" >&2; exit 1; }
    world=$(plugin_world "$SRC/$name")
    case " $WORLDS " in *" $world "*) ;; *) WORLDS="$WORLDS $world" ;; esac
done
for world in $WORLDS; do
    members=""
    packages=""
    for name in $NAMES; do
        if [ "$(plugin_world "$SRC/$name")" = "$world" ]; then
            members="$members $name"
            packages="$packages -p $name"
        fi
    done
    # shellcheck disable=SC2086 # one -p per plugin
    if ! (cd "$SRC" && build $packages); then
        echo "build-plugins: building${members} failed" >&2
        exit 1
    fi
done

for name in $NAMES; do
    core="$WASM_TARGET_DIR/$TARGET/release/$(echo "$name" | tr - _).wasm"
    component="$OUT/$name.wasm"
    if [ -f "$component" ] && [ "$component" -nt "$core" ] && [ "$component" -nt "$COMPONENTIZE" ]; then
        echo "build-plugins: $component is up to date" >&2
        continue
    fi
    "$COMPONENTIZE" "$core" "$component"
    echo "build-plugins: $component ($(wc -c <"$component") bytes)" >&2
done
