#!/usr/bin/env bash
# Install the Debian package in a clean Debian 12 chroot, as `apt install
# ./arauto_*.deb` on a fresh machine would, and check what the package
# promises: the unit enabled but not started, the credentials directory, the
# shipped configuration passing `arauto validate` with nothing overridden,
# `remove` keeping configuration and state, `purge` deleting them.
#
#   scripts/deb-install-test.sh target/debian/arauto_<version>_amd64.deb
#
# Needs root and debootstrap (`make check-deb-install` and .ci/run install it);
# the only network it uses is Debian's archive (debootstrap, and apt for the
# package's dependencies). The pristine chroot is made once and kept in
# target/deb-chroot/pristine; every run works on a fresh copy of it. No
# systemd runs in a chroot, so the maintainer scripts start nothing there by
# design; tests/packaging.rs runs them with systemd "running" as well.
set -euo pipefail
cd "$(dirname "$0")/.."

deb=${1:?usage: scripts/deb-install-test.sh PATH/TO/arauto_VERSION_amd64.deb}
[ -f "$deb" ] || { echo "deb-install-test: $deb does not exist (make deb)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "deb-install-test: needs root (chroot)" >&2; exit 1; }
command -v debootstrap >/dev/null || { echo "deb-install-test: debootstrap is not installed" >&2; exit 1; }

work="$PWD/target/deb-chroot"
pristine="$work/pristine"
root="$work/root"
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if [ ! -f "$pristine/.complete" ]; then
    echo "deb-install-test: debootstrap bookworm (minbase) into $pristine" >&2
    rm -rf "$pristine"
    mkdir -p "$work"
    debootstrap --variant=minbase bookworm "$pristine" "$mirror" >"$work/debootstrap.log" 2>&1 || {
        tail -n 20 "$work/debootstrap.log" >&2
        echo "deb-install-test: debootstrap failed (log: $work/debootstrap.log)" >&2
        exit 1
    }
    touch "$pristine/.complete"
fi
rm -rf "$root"
cp -a "$pristine" "$root"
cp /etc/resolv.conf "$root/etc/resolv.conf"

passed=0
failed=0
check() {
    local what=$1 output
    shift
    if output=$("$@" 2>&1); then
        passed=$((passed + 1))
        echo "ok: $what"
    else
        failed=$((failed + 1))
        echo "FAILED: $what: $*" >&2
        [ -z "$output" ] || printf '%s\n' "$output" | sed 's/^/    /' >&2
    fi
}
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }

cp "$deb" "$root/tmp/arauto.deb"
echo "deb-install-test: apt install ./arauto.deb in the chroot" >&2
in_root apt-get update -qq >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }
in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends /tmp/arauto.deb \
    >>"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; exit 1; }

check "the package is installed" in_root dpkg-query -W -f='${Status}' arauto
check "/usr/bin/arauto runs" in_root arauto --version
check "the unit is in /lib/systemd/system" test -f "$root/lib/systemd/system/arauto.service"
check "the unit is enabled (multi-user.target wants it)" \
    test -L "$root/etc/systemd/system/multi-user.target.wants/arauto.service"
check "the credentials directory is root's, mode 0700" \
    test "$(stat -c '%U %a' "$root/etc/arauto/credentials")" = "root 700"
check "/etc/arauto/arauto.toml is a conffile" \
    grep -qx '/etc/arauto/arauto.toml' "$root/var/lib/dpkg/info/arauto.conffiles"
check "the shipped configuration validates, nothing overridden" in_root arauto validate
check "the plugins are where the binary looks" \
    sh -c "chroot '$root' arauto validate | grep -q 'plugins /usr/lib/arauto/plugins'"
check "every subcommand's man page is installed" test -f "$root/usr/share/man/man1/arauto-queue-list.1.gz"
check "bash completion" test -f "$root/usr/share/bash-completion/completions/arauto"

# State the daemon would have written (DynamicUser=yes keeps it under private/).
mkdir -p "$root/var/lib/private/arauto" "$root/var/cache/private/arauto"
echo state >"$root/var/lib/private/arauto/arauto.redb"
echo secret >"$root/etc/arauto/credentials/li-chave-api"

in_root dpkg --remove arauto >>"$work/apt.log" 2>&1
check "remove: the binary is gone" test ! -e "$root/usr/bin/arauto"
check "remove: the configuration stays" test -f "$root/etc/arauto/arauto.toml"
check "remove: the state stays" test -f "$root/var/lib/private/arauto/arauto.redb"
check "remove: the credentials stay" test -f "$root/etc/arauto/credentials/li-chave-api"
check "remove: the unit is masked" \
    test "$(readlink "$root/etc/systemd/system/arauto.service")" = /dev/null

in_root dpkg --purge arauto >>"$work/apt.log" 2>&1
check "purge: the configuration is gone" test ! -e "$root/etc/arauto"
check "purge: the state is gone" test ! -e "$root/var/lib/private/arauto"
check "purge: the cache is gone" test ! -e "$root/var/cache/private/arauto"
check "purge: no mask or enablement is left" \
    sh -c "! ls '$root'/etc/systemd/system/arauto.service '$root'/etc/systemd/system/*/arauto.service 2>/dev/null | grep -q ."

echo "deb-install-test: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
