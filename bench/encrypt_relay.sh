#!/usr/bin/env bash
# encrypt_relay.sh - relay throughput with 100 % of messages encrypted
# (issue 15): sealpost relaying with every message OpenPGP-encrypted
# (encrypt-pgp, RSA-3072 key made by sqop), every message S/MIME-encrypted
# (encrypt-smime, AES-256-GCM, RSA-OAEP), and plain, beside Postfix, all in
# the same run, interleaved, medians (harness/measure_sut.sh). Ed25519 DKIM,
# DLP and policy on. Loopback only, bounded.
# Usage: bench/encrypt_relay.sh [-n MSGS=5000] [-k "SIZES=10"] [-r REPEATS=3] [-c CONC=20]   (root)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MSGS=5000; SIZES="10"; REPEATS=3; CONC=20
while [ $# -gt 0 ]; do
  case "$1" in
    -n) MSGS=$2; shift 2 ;; -k) SIZES=$2; shift 2 ;; -r) REPEATS=$2; shift 2 ;; -c) CONC=$2; shift 2 ;;
    *) echo "usage: $0 [-n MSGS] [-k SIZES] [-r REPEATS] [-c CONC]" >&2; exit 2 ;;
  esac
done
command -v sqop >/dev/null && command -v openssl >/dev/null || { echo "needs sqop and openssl (scripts/install-test-deps.sh)" >&2; exit 1; }
BIN_DIR=${BIN_DIR:-$(mktemp -d)}
( cd "$ROOT" && go build -o "$BIN_DIR/sealpost" ./cmd/sealpost )
export SEALPOST_BIN=$BIN_DIR/sealpost
RES=${RESULTS_ROOT:-/tmp/bench-results}/encrypt-relay-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
RUNS=$RES/runs.txt
SP=$(mktemp -d)
H=$HERE/harness
. "$H/common.sh"
"$H/setup_postfix.sh" >/dev/null
for rep in $(seq 1 "$REPEATS"); do
  for enc in off pgp smime; do
    env="BENCH_DKIM=ed25519 BENCH_ENCRYPT=$enc BENCH_DIR_SP=$SP/$enc"
    mkdir -p "$SP/$enc"
    env BENCH_DKIM=ed25519 BENCH_ENCRYPT=$enc BENCH_DIR_SP=$SP/$enc \
      "$H/measure_sut.sh" 127.0.0.1:2600 --peer "sealpost-encrypt-$enc" -n "$MSGS" -k "$SIZES" -r 1 -c "$CONC" -o "$RUNS" \
      --start-cmd "$env $HERE/sealpost_sut.sh start" --stop-cmd "$env $HERE/sealpost_sut.sh stop" >>"$RES/log.txt" 2>&1
  done
  "$H/postfix_relay.sh" -n "$MSGS" -k "$SIZES" -r 1 -c "$CONC" -o "$RUNS" >>"$RES/log.txt" 2>&1
done
echo "== medians (same run) =="
summarize "$RUNS" | tee "$RES/summary.txt"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" | tee -a "$RES/summary.txt"
echo "results: $RES"
