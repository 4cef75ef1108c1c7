#!/bin/sh
# Test the plugin crates natively (`make test-plugin-crates`, part of `make test`).
#
#   scripts/test-plugin-crates.sh [WORKSPACE...]   default: plugins tests/plugins
#
# The crates of one SDK world (every sender, or every connector; see
# scripts/plugin-world.sh) are tested in one cargo invocation, so cargo builds
# and links them side by side; crates of two worlds never share one, as the
# SDK's world features are exclusive. The SDK itself is tested once per world,
# alone, with only that world's feature.
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/plugin-world.sh
. "$ROOT/scripts/plugin-world.sh"
CARGO=${CARGO:-cargo}

package_name() {
    sed -n 's/^name *= *"\(.*\)"/\1/p' "$1/Cargo.toml" | head -n 1
}

[ "$#" -gt 0 ] || set -- plugins tests/plugins
for ws in "$@"; do
    worlds=""
    for dir in "$ROOT/$ws"/*/; do
        dir=${dir%/}
        [ -f "$dir/Cargo.toml" ] || continue
        if [ "$(package_name "$dir")" = arauto-plugin-sdk ]; then
            for world in connector sender; do
                echo "== $ws: arauto-plugin-sdk ($world)"
                (cd "$ROOT/$ws" && $CARGO test --locked -p arauto-plugin-sdk --features "$world")
            done
            continue
        fi
        world=$(plugin_world "$dir")
        case " $worlds " in *" $world "*) ;; *) worlds="$worlds $world" ;; esac
    done
    for world in $worlds; do
        names=""
        packages=""
        for dir in "$ROOT/$ws"/*/; do
            dir=${dir%/}
            [ -f "$dir/Cargo.toml" ] || continue
            name=$(package_name "$dir")
            [ "$name" != arauto-plugin-sdk ] || continue
            [ "$(plugin_world "$dir")" = "$world" ] || continue
            names="$names $name"
            packages="$packages -p $name"
        done
        echo "== $ws:$names"
        # shellcheck disable=SC2086 # one -p per crate
        (cd "$ROOT/$ws" && $CARGO test --locked $packages)
    done
done
