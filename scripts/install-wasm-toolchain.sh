#!/bin/sh
# Make sure a toolchain that can build wasm32-unknown-unknown plugins exists.
#
# The rustup toolchain on these machines has no wasm32 target and cannot
# download one, so on Debian we install rustc-web + cargo-web + rust-web-src
# (std sources for -Zbuild-std) and lld-22 (the wasm linker behind
# /usr/bin/rust-lld). Idempotent: does nothing when a usable toolchain is present.
set -eu
TARGET=wasm32-unknown-unknown

if libdir=$(rustc --print target-libdir --target "$TARGET" 2>/dev/null) &&
    ls "$libdir"/libstd-*.rlib >/dev/null 2>&1; then
    echo "install-wasm-toolchain: $(rustc --version) has a prebuilt $TARGET std" >&2
    exit 0
fi

debian_ok() {
    [ -x /usr/bin/rustc ] && [ -x /usr/bin/cargo ] &&
        [ -d "$(/usr/bin/rustc --print sysroot)/lib/rustlib/src/rust/library" ] &&
        [ -e /usr/bin/rust-lld ] && /usr/bin/rust-lld -flavor wasm --version >/dev/null 2>&1
}

if debian_ok; then
    echo "install-wasm-toolchain: using $(/usr/bin/rustc --version) with -Zbuild-std" >&2
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-wasm-toolchain: no $TARGET toolchain. Run 'rustup target add $TARGET'," >&2
    echo "  or on Debian 12: apt-get install rustc-web cargo-web rust-web-src lld-22" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "install-wasm-toolchain: no $TARGET toolchain, and installing one needs root:" >&2
        echo "  apt-get install rustc-web cargo-web rust-web-src lld-22   (Debian 12, bookworm-security)" >&2
        exit 1
    fi
    SUDO="sudo"
fi
echo "install-wasm-toolchain: installing rustc-web cargo-web rust-web-src lld-22 (about 150 MB)" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq rustc-web cargo-web rust-web-src lld-22 >/dev/null
if ! /usr/bin/rustc --version | grep -q ' 1\.\(9[6-9]\|[1-9][0-9][0-9]\)\.'; then
    echo "install-wasm-toolchain: warning: $(/usr/bin/rustc --version) is older than 1.96;" >&2
    echo "  enable the bookworm-security suite to get rustc-web 1.96" >&2
fi
debian_ok || { echo "install-wasm-toolchain: toolchain still unusable after install" >&2; exit 1; }
echo "install-wasm-toolchain: ready: $(/usr/bin/rustc --version)" >&2
