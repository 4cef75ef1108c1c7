#!/bin/sh
# Build WASM plugin components.
#
#   scripts/build-plugins.sh                 every first-party plugin  -> target/plugins/<name>.wasm
#   scripts/build-plugins.sh --test-plugins  the sandbox test plugins  -> target/test-plugins/<name>.wasm
#   scripts/build-plugins.sh NAME...         only these first-party plugins
#
# Each plugin is a cdylib crate in plugins/<name>/ (or tests/plugins/<name>/)
# built for wasm32-unknown-unknown, then wrapped into a component by
# tools/componentize. Plugins are built one cargo invocation each: the SDK's
# `connector`/`sender` features are exclusive and cargo would unify them.
#
# Uses the active toolchain when it has a prebuilt wasm32 std, otherwise
# Debian's rustc-web with -Zbuild-std (scripts/install-wasm-toolchain.sh).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET=wasm32-unknown-unknown
WASM_TARGET_DIR="$ROOT/target/wasm"

if [ "${1:-}" = "--test-plugins" ]; then
    shift
    SRC="$ROOT/tests/plugins"
    OUT="$ROOT/target/test-plugins"
else
    SRC="$ROOT/plugins"
    OUT="$ROOT/target/plugins"
fi
mkdir -p "$OUT"

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

# The componentizer is a host tool from the main workspace.
cargo build --quiet --release --manifest-path "$ROOT/Cargo.toml" -p arauto-componentize
COMPONENTIZE="$ROOT/target/release/arauto-componentize"

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

for name in $NAMES; do
    [ -f "$SRC/$name/Cargo.toml" ] || { echo "build-plugins: no plugin crate $SRC/$name" >&2; exit 1; }
    (cd "$SRC" && build -p "$name")
    core="$WASM_TARGET_DIR/$TARGET/release/$(echo "$name" | tr - _).wasm"
    "$COMPONENTIZE" "$core" "$OUT/$name.wasm"
    echo "build-plugins: $OUT/$name.wasm ($(wc -c <"$OUT/$name.wasm") bytes)" >&2
done
