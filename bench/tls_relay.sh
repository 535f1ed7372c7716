#!/usr/bin/env bash
# tls_relay.sh - what the outbound TLS policy costs: sealpost relaying with
# the policy on (MX delivery, DANE-EE and MTA-STS enforce verified on every
# message, the MTA-STS policy cached) and off (smarthost, opportunistic
# STARTTLS), interleaved in one process (bench/tlsrelay), medians of
# REPEATS, beside Postfix relaying the same count and size of mail through
# the harness (harness/postfix_relay.sh: smtp-source -> postfix -> smtp-sink,
# no TLS) in the same run. Loopback only; bounded counts and a per-run limit.
#
# Usage: bench/tls_relay.sh [-n MSGS=2000] [-k SIZE_KiB=10] [-r REPEATS=3] [-c CONC=10]
# Needs root for Postfix (harness/setup_postfix.sh). Results in
# ${RESULTS_ROOT:-/tmp/bench-results}/tls-<timestamp>/ and on stdout.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MSGS=2000; SIZE=10; REPEATS=3; CONC=10
while [ $# -gt 0 ]; do
  case "$1" in
    -n) MSGS=$2; shift 2 ;; -k) SIZE=$2; shift 2 ;; -r) REPEATS=$2; shift 2 ;; -c) CONC=$2; shift 2 ;;
    *) echo "usage: $0 [-n MSGS] [-k SIZE_KiB] [-r REPEATS] [-c CONC]" >&2; exit 2 ;;
  esac
done
BIN=$(mktemp -d)
trap 'rm -rf "$BIN"' EXIT
( cd "$ROOT" && go build -o "$BIN/tlsrelay" ./bench/tlsrelay )
RES=${RESULTS_ROOT:-/tmp/bench-results}/tls-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
H=$HERE/harness
. "$H/common.sh"
# The machine has one Postfix: a second benchmark driving it (start, stop,
# postsuper -d ALL) would wreck both runs.
if pgrep -f 'harness/postfix_relay.sh' >/dev/null; then
  echo "another postfix_relay.sh is running; try again when it has finished" >&2; exit 1
fi
echo "== Postfix (no TLS), same count and size =="
"$H/postfix_relay.sh" -n "$MSGS" -k "$SIZE" -r "$REPEATS" -c "$CONC" -o "$RES/postfix-runs.txt" >"$RES/postfix.log" 2>&1
summarize "$RES/postfix-runs.txt" | tee "$RES/summary.txt"
echo "== sealpost, TLS policy off vs on (one process: load generator, gateway, sink) =="
timeout 1800 "$BIN/tlsrelay" -n "$MSGS" -k "$SIZE" -r "$REPEATS" -c "$CONC" 2>"$RES/tlsrelay.log" | tee "$RES/tlsrelay.txt" | tee -a "$RES/summary.txt"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')" | tee -a "$RES/summary.txt"
echo "results: $RES"
