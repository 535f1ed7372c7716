#!/usr/bin/env bash
# dlp.sh - DLP scan throughput beside ripgrep, same file, one core, same run.
# A 100 MiB mixed corpus (prose with identifiers and decoys) and a prose-only
# one; ripgrep searches the equivalent pattern set (it cannot validate check
# digits; we do). Medians of 3.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
command -v rg >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -q --no-install-recommends ripgrep >/dev/null; }
BIN=${BIN_DIR:-/tmp/bench-bin}; mkdir -p "$BIN"
( cd "$ROOT" && go build -o "$BIN/dlpscan" ./bench/dlpscan )
MIXED=/tmp/dlp-mixed.txt; PLAIN=/tmp/dlp-plain.txt
[ -f "$MIXED" ] || "$BIN/dlpscan" gen -o "$MIXED" -mb 100
[ -f "$PLAIN" ] || "$BIN/dlpscan" gen -o "$PLAIN" -mb 100 -plain
PATTERNS=(
  -e '\b\d{3}[ -]?\d{3}[ -]?\d{4}\b'                                  # NHS
  -e '\b[A-CEGHJ-PR-TW-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b'             # NINO
  -e '\b(?:\d{4}[ -]?){3}\d{4}\b'                                     # card
  -e '\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,3})?\b'     # IBAN
  -e '\b\d{2}-\d{2}-\d{2}\b'                                          # sort code
  -e '\b[A-Z9]{5}\d{6}[A-Z9]{2}\d[A-Z]{2}\b'                          # driving licence
  -e '\bGB ?\d{3} ?\d{4} ?\d{2}\b'                                    # VAT
  -e '\b[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}\b'                           # postcode
  -e '-----BEGIN [A-Z ]*PRIVATE KEY-----'                             # keys
)
rg_rate() { # file -> median MB/s of 3 runs of ripgrep on one thread
  local f=$1 size rates=() s e
  size=$(stat -c %s "$f")
  rg --threads 1 -c "${PATTERNS[@]}" "$f" >/dev/null || true
  for _ in 1 2 3; do
    s=$(date +%s.%N); rg --threads 1 -c "${PATTERNS[@]}" "$f" >/dev/null || true; e=$(date +%s.%N)
    rates+=("$(awk -v b="$size" -v s="$s" -v e="$e" 'BEGIN{printf "%.0f", b/1e6/(e-s)}')")
  done
  printf '%s\n' "${rates[@]}" | sort -n | sed -n 2p
}
for f in "$MIXED" "$PLAIN"; do
  echo "== $(basename "$f") ($(du -m "$f" | cut -f1) MiB)"
  "$BIN/dlpscan" time -n 3 "$f"
  echo "ripgrep $(rg --version | head -1 | cut -d' ' -f2) threads=1 median_mb_per_s=$(rg_rate "$f") matching_lines=$(rg --threads 1 -c "${PATTERNS[@]}" "$f" || echo 0)"
done
