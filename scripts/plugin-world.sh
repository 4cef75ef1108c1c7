# Sourced by scripts/build-plugins.sh and scripts/test-plugin-crates.sh.
#
# plugin_world DIR: the SDK world the crate in DIR is built for, the feature
# its [dependencies] entry of arauto-plugin-sdk turns on ("connector",
# "sender"), or "alone-<dir name>" for a crate without the SDK there. The
# SDK's world features are exclusive and cargo unifies features across one
# invocation, so crates of one world can share an invocation, crates of two
# worlds cannot.
plugin_world() {
    sed -n '/^\[dependencies\]/,/^\[/p' "$1/Cargo.toml" |
        sed -n 's/^arauto-plugin-sdk *=.*features *= *\[ *"\([a-z-]*\)".*/\1/p' | head -n 1 |
        grep . || echo "alone-$(basename "$1")"
}
