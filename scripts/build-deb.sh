#!/usr/bin/env bash
# Builds dist/sealpost_VERSION_ARCH.deb with dpkg-deb from one static
# binary (CGO_ENABLED=0). Usage: scripts/build-deb.sh [OUTDIR] [BINARY]
# (a BINARY already built is packaged as is; tests build it once).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-dist}"
bin="${2:-}"
version="${SEALPOST_VERSION:-0.1.0}"
arch="$(dpkg --print-architecture)"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$out"
if [ -z "$bin" ]; then
	bin="$stage/sealpost.bin"
	CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$bin" ./cmd/sealpost
fi
root="$stage/root"
install -D -m 0755 "$bin" "$root/usr/bin/sealpost"
install -D -m 0644 packaging/sealpost.service "$root/lib/systemd/system/sealpost.service"
install -D -m 0644 packaging/debian/copyright "$root/usr/share/doc/sealpost/copyright"
install -D -m 0644 README.md "$root/usr/share/doc/sealpost/README.md"
install -D -m 0644 packaging/debian/lintian-overrides "$root/usr/share/lintian/overrides/sealpost"
printf 'sealpost (%s) unstable; urgency=medium\n\n  * Package built from the sealpost tree.\n\n -- sealpost maintainers <packaging@sealpost.example>  %s\n' \
	"$version" "$(date -R -d @"${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}")" |
	gzip -9n >"$root/usr/share/doc/sealpost/changelog.gz"
chmod 0644 "$root/usr/share/doc/sealpost/changelog.gz"
mkdir -p "$root/DEBIAN"
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" packaging/debian/control.in >"$root/DEBIAN/control"
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$root/DEBIAN/$s"; done
(cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum) >"$root/DEBIAN/md5sums"
chmod 0644 "$root/DEBIAN/md5sums" "$root/DEBIAN/control"
deb="$out/sealpost_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$root" "$deb" >/dev/null
echo "$deb"
