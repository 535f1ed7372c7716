#!/usr/bin/env bash
# relay.sh - sealpost as a relay beside Postfix and maddy, in the same run.
#
# smtp-source -> relay -> smtp-sink on loopback: 20,000 messages of 10 KB and
# of 100 KB, 20 concurrent sessions, 3 repetitions interleaved across peers
# (Postfix, Postfix signing through the OpenDKIM milter with RSA-2048 -- the
# peer a site that wants signed mail on Postfix deploys -- and maddy),
# medians (harness/run_all.sh, copied from the project's shared bench kit).
# sealpost runs with durable acceptance (fsync + group commit) and DKIM
# signing of every message; it is measured twice, with RSA-2048 (the
# default) and with Ed25519 signatures. Then its memory: RSS with 1,000 idle
# sessions and RSS growth while one 100 MiB message passes (bench/spload).
#
# Usage: bench/relay.sh [-n MSGS] [-k "SIZES"] [-r REPEATS] [-c CONC]
# PEERS="ceiling postfix postfix-dkim maddy" (the default) picks the peers.
# Needs root (Postfix, smtp-sink as the postfix user). Installs postfix and
# builds maddy v0.8.1 on first use (harness/install_tools.sh, trimmed).
# Results: ${RESULTS_ROOT:-/tmp/bench-results}/<timestamp>/ and on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MSGS=20000; SIZES="10 100"; REPEATS=3; CONC=20
while [ $# -gt 0 ]; do
  case "$1" in
    -n) MSGS=$2; shift 2 ;; -k) SIZES=$2; shift 2 ;; -r) REPEATS=$2; shift 2 ;; -c) CONC=$2; shift 2 ;;
    *) echo "usage: $0 [-n MSGS] [-k SIZES] [-r REPEATS] [-c CONC]" >&2; exit 2 ;;
  esac
done
export BIN_DIR=${BIN_DIR:-/tmp/bench-bin}
mkdir -p "$BIN_DIR"
if ! command -v smtp-source >/dev/null || ! command -v postfix >/dev/null; then
  "$ROOT/scripts/install-test-deps.sh"
fi
# The postfix-dkim peer's milter (a bench tool, not a test dependency).
command -v opendkim >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends opendkim opendkim-tools >/dev/null; }
PEERS=${PEERS:-ceiling postfix postfix-dkim maddy}
if [[ " $PEERS " == *" maddy "* ]] && [ ! -x "$BIN_DIR/maddy" ]; then
  echo "building maddy v0.8.1 (the Go peer)" >&2
  ( mkdir -p /tmp/maddy-build && cd /tmp/maddy-build && { [ -f go.mod ] || go mod init scratch >/dev/null 2>&1; } &&
    go mod edit \
      -replace github.com/emersion/go-imap=github.com/foxcpp/go-imap@v1.0.0-beta.1.0.20220623182312-df940c324887 \
      -replace github.com/emersion/go-smtp=github.com/foxcpp/go-smtp@v1.21.4-0.20250124171104-c8519ae4fb23 \
      -replace github.com/libdns/gandi=github.com/foxcpp/libdns-gandi@v1.0.4-0.20240127130558-4782f9d5ce3e &&
    GOBIN=$BIN_DIR go get -tool github.com/foxcpp/maddy/cmd/maddy@v0.8.1 && GOBIN=$BIN_DIR go install github.com/foxcpp/maddy/cmd/maddy )
fi
( cd "$ROOT" && go build -o "$BIN_DIR/sealpost" ./cmd/sealpost && go build -o "$BIN_DIR/spload" ./bench/spload )
export SEALPOST_BIN=$BIN_DIR/sealpost
RES=${RESULTS_ROOT:-/tmp/bench-results}/sealpost-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
export RESULTS_ROOT=$RES
H=$HERE/harness
# Throughput: ceiling, Postfix, Postfix+OpenDKIM, maddy and sealpost (RSA-2048), interleaved.
BENCH_DKIM=rsa-2048 "$H/run_all.sh" --peers "$PEERS" -n "$MSGS" -k "$SIZES" -r "$REPEATS" -c "$CONC" \
  --sut 127.0.0.1:2600 --sut-name sealpost-rsa2048 \
  --sut-start "BENCH_DKIM=rsa-2048 $HERE/sealpost_sut.sh start" --sut-stop "$HERE/sealpost_sut.sh stop" | tee "$RES/rsa.txt"
RUNS=$(ls -d "$RES"/2*/ | tail -1)runs.txt
# The same, Ed25519-signed, appended to the same runs file.
BENCH_DKIM=ed25519 "$H/measure_sut.sh" 127.0.0.1:2600 --peer sealpost-ed25519 -n "$MSGS" -k "$SIZES" -r "$REPEATS" -c "$CONC" \
  --start-cmd "BENCH_DKIM=ed25519 $HERE/sealpost_sut.sh start" --stop-cmd "$HERE/sealpost_sut.sh stop" -o "$RUNS" > "$RES/ed25519.log" 2>&1
# Memory.
smtp-sink -u postfix 127.0.0.1:2526 1000 & SINK=$!
trap 'kill $SINK 2>/dev/null; "$HERE/sealpost_sut.sh" stop' EXIT
BENCH_DKIM=rsa-2048 "$HERE/sealpost_sut.sh" start
PID=$(cat "${BENCH_DIR_SP:-/tmp/bench-sealpost}/pid")
"$BIN_DIR/spload" idle -addr 127.0.0.1:2600 -pid "$PID" -n 1000 -hold 10s | tee "$RES/memory.txt"
"$BIN_DIR/spload" big -addr 127.0.0.1:2600 -pid "$PID" -mb 100 | tee -a "$RES/memory.txt"
"$HERE/sealpost_sut.sh" stop
. "$H/common.sh"
echo "== medians (same run) =="
summarize "$RUNS" | tee "$RES/summary.txt"
echo "== memory =="
cat "$RES/memory.txt"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "results: $RES"
