#!/usr/bin/env bash
# Installs what the tests drive: Postfix's smtp-source and smtp-sink, swaks
# (with TLS support), openssl, curl, and the independent checkers python3-dkim and
# python3-stdnum, for PDF extraction tests poppler's pdftotext, qpdf and
# the DejaVu fonts, and for the portal's browser tests Chromium and axe-core
# (npm, into /opt/sealpost-test), for the store's tests PostgreSQL 15 (never
# started as a service: the tests initdb and run their own cluster) and the
# versitygw S3 server (built once with `go install` into $(go env GOPATH)/bin;
# it takes minutes the first time). Debian/Ubuntu, as root; does nothing when
# everything is there already. Postfix is installed with "No configuration",
# so it does not start or listen: the tests only use its load tools.
set -euo pipefail

need=()
command -v smtp-source >/dev/null || need+=(postfix)
command -v smtp-sink   >/dev/null || need+=(postfix)
command -v swaks       >/dev/null || need+=(swaks)
perl -MNet::SSLeay -e1 2>/dev/null || need+=(libnet-ssleay-perl)
perl -MIO::Socket::SSL -e1 2>/dev/null || need+=(libio-socket-ssl-perl)
command -v openssl     >/dev/null || need+=(openssl)
command -v curl        >/dev/null || need+=(curl)
command -v timeout     >/dev/null || need+=(coreutils)
/usr/bin/python3 -c 'import stdnum.gb.nhs' 2>/dev/null || need+=(python3-stdnum)
/usr/bin/python3 -c 'import dkim' 2>/dev/null || need+=(python3-dkim)
command -v pdftotext   >/dev/null || need+=(poppler-utils)
command -v qpdf        >/dev/null || need+=(qpdf)
command -v bzip2       >/dev/null || need+=(bzip2)  # DLP: bzip2 attachments
command -v knotd       >/dev/null || need+=(knot)     # DANE e2e: signs a test zone
command -v unbound     >/dev/null || need+=(unbound)  # DANE e2e: validates it (AD bit)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || need+=(fonts-dejavu-core)
command -v chromium    >/dev/null || need+=(chromium)
command -v npm         >/dev/null || need+=(npm)
id postfix >/dev/null 2>&1 || need+=(postfix)
# Inbound antivirus tests run their own clamd with a database they write;
# the packaged daemon and freshclam are kept stopped (see below).
{ command -v clamd >/dev/null || [ -x /usr/sbin/clamd ]; } || need+=(clamav-daemon)
command -v zip         >/dev/null || need+=(zip)         # attachments: encrypted zip
command -v 7z          >/dev/null || need+=(p7zip-full)  # attachments: encrypted 7z
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
# OpenPGP peers: sealpost's PGP/MIME is decrypted and verified by each.
command -v gpg            >/dev/null || need+=(gnupg)
command -v sqop           >/dev/null || need+=(sqop)
command -v rnp            >/dev/null || need+=(rnp)
command -v gosop          >/dev/null || need+=(gosop)
command -v pgpainless-cli >/dev/null || need+=(pgpainless-cli)
# Packaging: the .deb is checked by lintian, the unit by systemd-analyze.
command -v lintian         >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v dpkg-deb        >/dev/null || need+=(dpkg)
command -v setpriv         >/dev/null || need+=(util-linux)
command -v useradd         >/dev/null || need+=(passwd)

# axe-core (npm) checks the portal's pages for accessibility in Chromium.
AXE_DIR=/opt/sealpost-test
install_axe() {
  [ -f "$AXE_DIR/node_modules/axe-core/axe.min.js" ] && return 0
  mkdir -p "$AXE_DIR"
  (cd "$AXE_DIR" && npm install --no-audit --no-fund --silent axe-core@4 >/dev/null)
}

# versitygw (S3) for internal/blob's tests; testutil.VersityGW finds it there.
install_versitygw() {
  command -v go >/dev/null || { echo "install-test-deps: go not found, cannot build versitygw" >&2; return 1; }
  local bin
  bin="$(go env GOPATH | cut -d: -f1)/bin/versitygw"
  [ -x "$bin" ] && return 0
  echo "install-test-deps: building versitygw (once; several minutes)" >&2
  (cd / && GOFLAGS= go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
}

if [ ${#need[@]} -eq 0 ]; then
  install_axe
  install_versitygw
  exit 0
fi
pkgs=$(printf '%s\n' "${need[@]}" | sort -u | tr '\n' ' ')
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-test-deps: missing $pkgs; run as root on Debian, or install them yourself" >&2
  exit 1
fi
echo "install-test-deps: installing $pkgs" >&2
export DEBIAN_FRONTEND=noninteractive
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
echo "postfix postfix/mailname string localhost" | debconf-set-selections
# Packages with services (postgresql) must not start them: nothing may
# listen until a test starts it. policy-rc.d refuses every start during the
# install (only when this script put it there is it removed).
made_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
  chmod 755 /usr/sbin/policy-rc.d
  made_policy=1
fi
trap 'if [ "$made_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT
apt-get update -q >/dev/null
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $pkgs ca-certificates >/dev/null
# The tests start clamd themselves, offline: the packaged service would
# fetch signatures from the Internet.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now clamav-daemon clamav-freshclam >/dev/null 2>&1 || true
fi
install_axe
install_versitygw
