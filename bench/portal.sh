#!/usr/bin/env bash
# portal.sh - the secure portal under load, beside OpenSSL's AES-256-GCM on
# one core, in the same run: message-page requests/s with p50/p99 latency
# and RSS, and the download rate of a 1 GiB attachment (decrypted, decoded
# and streamed), medians of 3. Loopback only, bounded (bench/portalload).
# Usage: bench/portal.sh [-mb MIB] [-c CLIENTS] [-n REQUESTS] [-d DURATION]
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
BIN=${BIN_DIR:-/tmp/bench-bin}; mkdir -p "$BIN"
( cd "$ROOT" && go build -o "$BIN/sealpost" ./cmd/sealpost && go build -o "$BIN/portalload" ./bench/portalload )
echo "== openssl speed -evp aes-256-gcm, one core, 64 KiB blocks"
openssl speed -evp aes-256-gcm -seconds 3 -bytes 65536 2>/dev/null | tail -1 | awk '{printf "openssl %s MB/s\n", $2/1000}'
echo "== sealpost's decrypt-and-read path alone (internal/seal BenchmarkOpenRead, 256 MiB)"
( cd "$ROOT" && go test ./internal/seal -run XXX -bench OpenRead -benchtime 5x | grep Benchmark )
echo "== portal"
"$BIN/portalload" -bin "$BIN/sealpost" -mb 1024 -c 32 -n 20000 -d 30s -nohash "$@"
echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
