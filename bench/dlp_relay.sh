#!/usr/bin/env bash
# dlp_relay.sh - what inspection costs on the relay path: sealpost relaying
# 10 KB messages (Ed25519 DKIM) with DLP + policy on and off, interleaved in
# the same run, medians of 3; plus the mean time from the end of DATA to the
# 250 reply, from the gateway's own histogram. Loopback only, bounded.
# Usage: bench/dlp_relay.sh [-n MSGS] [-r REPEATS] [-c CONC]   (root)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MSGS=20000; REPEATS=3; CONC=20
while [ $# -gt 0 ]; do
  case "$1" in
    -n) MSGS=$2; shift 2 ;; -r) REPEATS=$2; shift 2 ;; -c) CONC=$2; shift 2 ;;
    *) echo "usage: $0 [-n MSGS] [-r REPEATS] [-c CONC]" >&2; exit 2 ;;
  esac
done
export BIN_DIR=${BIN_DIR:-/tmp/bench-bin}
mkdir -p "$BIN_DIR"
command -v smtp-source >/dev/null || "$ROOT/scripts/install-test-deps.sh"
( cd "$ROOT" && go build -o "$BIN_DIR/sealpost" ./cmd/sealpost )
export SEALPOST_BIN=$BIN_DIR/sealpost
RES=${RESULTS_ROOT:-/tmp/bench-results}/dlp-relay-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
export BENCH_DIR_SP=$RES/sp
mkdir -p "$BENCH_DIR_SP"
H=$HERE/harness
. "$H/common.sh"
for rep in $(seq 1 "$REPEATS"); do
  for dlp in true false; do
    BENCH_DLP=$dlp BENCH_DKIM=ed25519 "$H/measure_sut.sh" 127.0.0.1:2600 --peer "sealpost-dlp-$dlp" -n "$MSGS" -k 10 -r 1 -c "$CONC" \
      --start-cmd "BENCH_DLP=$dlp BENCH_DKIM=ed25519 $HERE/sealpost_sut.sh start" \
      --stop-cmd "BENCH_DLP=$dlp BENCH_DKIM=ed25519 $HERE/sealpost_sut.sh stop" -o "$RES/runs.txt" >>"$RES/log.txt" 2>&1
  done
done
echo "== medians (same run) =="
summarize "$RES/runs.txt" | tee "$RES/summary.txt"
echo "== mean end-of-DATA to 250 (per run) =="
cat "$BENCH_DIR_SP/accept-latency.txt"
awk '{split($1,a,"="); split($2,b,"="); v[a[2]]=v[a[2]] " " b[2]} END {for (k in v) print "dlp=" k " accept_ms:" v[k]}' "$BENCH_DIR_SP/accept-latency.txt"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "results: $RES"
