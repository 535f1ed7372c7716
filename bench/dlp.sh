#!/usr/bin/env bash
# dlp.sh - DLP scan throughput beside ripgrep, same files, one core, same run.
# Three 100 MiB corpora from bench/dlpscan: mixed (prose with identifiers and
# decoys), prose only, and number-dense (a date, an amount or a reference
# every few words, as in casework, minutes and finance mail, with real
# identifiers on one line in eight). ripgrep searches the equivalent pattern
# set (it cannot validate check digits; we do) twice: as written (Unicode
# \b and \d, ripgrep's default) and ASCII-only ((?-u), its fast form).
# Rates are MB per CPU second (user+system, one core): this machine is shared
# and wall-clock rates vary with whatever else runs. Medians of REPS (5).
# BASE=<git rev>: also time the scanner as it was at that revision (its
# internal/dlp, this tree's dlpscan), interleaved with this tree's, so the
# before/after figures come from the same run.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
REPS=${REPS:-5}
command -v rg >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends ripgrep >/dev/null; }
BIN=${BIN_DIR:-/tmp/bench-bin}; mkdir -p "$BIN"
CORPUS=${CORPUS_DIR:-/tmp/bench-dlp}; mkdir -p "$CORPUS"
( cd "$ROOT" && go build -o "$BIN/dlpscan" ./bench/dlpscan )
SCANNERS=("$BIN/dlpscan")
if [ -n "${BASE:-}" ]; then
  T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
  git -C "$ROOT" archive "$BASE" | tar -x -C "$T"
  cp "$ROOT/bench/dlpscan/main.go" "$T/bench/dlpscan/main.go"
  ( cd "$T" && go build -o "$BIN/dlpscan-base" ./bench/dlpscan )
  SCANNERS=("$BIN/dlpscan-base" "$BIN/dlpscan")
fi
MIXED=$CORPUS/mixed.txt; PLAIN=$CORPUS/prose.txt; DENSE=$CORPUS/dense.txt
[ -f "$MIXED" ] || "$BIN/dlpscan" gen -o "$MIXED" -mb 100
[ -f "$PLAIN" ] || "$BIN/dlpscan" gen -o "$PLAIN" -mb 100 -plain
[ -f "$DENSE" ] || "$BIN/dlpscan" gen -o "$DENSE" -mb 100 -dense
PATTERNS=(
  '\b\d{3}[ -]?\d{3}[ -]?\d{4}\b'                                  # NHS
  '\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b'             # NINO
  '\b(?:\d{4}[ -]?){3}\d{4}\b'                                     # card
  '\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b'     # IBAN
  '\b\d{2}-\d{2}-\d{2}\b'                                          # sort code
  '\b[A-Z9]{5}\d{6}[A-Z9]{2}\d[A-Z]{2}\b'                          # driving licence
  '\bGB ?\d{3} ?\d{4} ?\d{2}\b'                                    # VAT
  '\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b'                           # postcode
  '-----BEGIN [A-Z ]*PRIVATE KEY-----'                             # keys
)
RG_UNICODE=(); RG_ASCII=()
for p in "${PATTERNS[@]}"; do RG_UNICODE+=(-e "$p"); RG_ASCII+=(-e "(?-u)$p"); done
rg_rate() { # file pattern-args... -> "median min max" MB per CPU second of REPS single-thread runs
  local f=$1; shift
  local size rates=() t
  size=$(stat -c %s "$f")
  for _ in $(seq 1 "$REPS"); do
    # bash's time keyword: user and system seconds of the child alone.
    t=$( { TIMEFORMAT='%U %S'; time rg --threads 1 -c "$@" "$f" >/dev/null || true; } 2>&1 )
    rates+=("$(awk -v b="$size" -v u="${t% *}" -v s="${t#* }" 'BEGIN{printf "%.0f", b/1e6/(u+s+1e-9)}')")
  done
  printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END{printf "%s %s %s", a[int((NR+1)/2)], a[1], a[NR]}'
}
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), loadavg $(cut -d' ' -f1-3 /proc/loadavg), ripgrep $(rg --version | head -1 | cut -d' ' -f2)"
for f in "$DENSE" "$MIXED" "$PLAIN"; do
  echo "== $(basename "$f") ($(du -m "$f" | cut -f1) MiB)"
  for s in "${SCANNERS[@]}"; do
    echo "$(basename "$s"): $("$s" time -n "$REPS" "$f")"
  done
  read -r med lo hi <<<"$(rg_rate "$f" "${RG_ASCII[@]}")"
  echo "ripgrep-ascii threads=1 median_mb_per_cpu_s=$med min=$lo max=$hi matching_lines=$(rg --threads 1 -c "${RG_ASCII[@]}" "$f" || echo 0)"
  # Unicode \b makes ripgrep's DFA give up at every non-ASCII byte (the £
  # of the dense corpus), so one run is enough to show it.
  read -r med lo hi <<<"$(REPS=1 rg_rate "$f" "${RG_UNICODE[@]}")"
  echo "ripgrep-unicode threads=1 runs=1 mb_per_cpu_s=$med"
done
