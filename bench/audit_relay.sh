#!/usr/bin/env bash
# audit_relay.sh - what auditing every message costs on the relay path:
# sealpost built from BASE (a revision without the per-message audit
# events, e.g. the commit before them) beside sealpost built from this tree,
# with Postfix in the same run; interleaved, medians (harness/measure_sut.sh).
#
# Usage: BASE=REV bench/audit_relay.sh [-n MSGS=5000] [-k "SIZES=10"] [-r REPEATS=3] [-c CONC=20]
# Ed25519 DKIM (an RSA signature would dominate both), DLP and policy on.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
MSGS=5000; SIZES="10"; REPEATS=3; CONC=20
while [ $# -gt 0 ]; do
  case "$1" in
    -n) MSGS=$2; shift 2 ;; -k) SIZES=$2; shift 2 ;; -r) REPEATS=$2; shift 2 ;; -c) CONC=$2; shift 2 ;;
    *) echo "usage: BASE=REV $0 [-n MSGS] [-k SIZES] [-r REPEATS] [-c CONC]" >&2; exit 2 ;;
  esac
done
: "${BASE:?set BASE to the revision to compare with}"
BIN_DIR=${BIN_DIR:-/tmp/bench-bin-audit}
mkdir -p "$BIN_DIR"
WT=$(mktemp -d)
trap 'git -C "$ROOT" worktree remove --force "$WT" >/dev/null 2>&1 || true' EXIT
git -C "$ROOT" worktree add -q --detach "$WT" "$BASE"
( cd "$WT" && go build -o "$BIN_DIR/sealpost-base" ./cmd/sealpost )
( cd "$ROOT" && go build -o "$BIN_DIR/sealpost-audit" ./cmd/sealpost )
RES=${RESULTS_ROOT:-/tmp/bench-results}/audit-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
RUNS=$RES/runs.txt
H=$HERE/harness
. "$H/common.sh"
"$H/setup_postfix.sh" >/dev/null
for rep in $(seq 1 "$REPEATS"); do
  for peer in base audit; do
    BENCH_DKIM=ed25519 BENCH_DIR_SP=/tmp/bench-sealpost-$peer SEALPOST_BIN=$BIN_DIR/sealpost-$peer \
      "$H/measure_sut.sh" 127.0.0.1:2600 --peer "sealpost-$peer" -n "$MSGS" -k "$SIZES" -r 1 -c "$CONC" -o "$RUNS" \
      --start-cmd "BENCH_DKIM=ed25519 BENCH_DIR_SP=/tmp/bench-sealpost-$peer SEALPOST_BIN=$BIN_DIR/sealpost-$peer $HERE/sealpost_sut.sh start" \
      --stop-cmd "BENCH_DIR_SP=/tmp/bench-sealpost-$peer $HERE/sealpost_sut.sh stop" >>"$RES/log.txt" 2>&1
  done
  "$H/postfix_relay.sh" -n "$MSGS" -k "$SIZES" -r 1 -c "$CONC" -o "$RUNS" >>"$RES/log.txt" 2>&1
done
echo "== medians (same run) =="
summarize "$RUNS" | tee "$RES/summary.txt"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "results: $RES"
