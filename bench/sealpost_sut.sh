#!/usr/bin/env bash
# sealpost_sut.sh start|stop - run sealpost as the relay under test for the
# harness: outbound (connector) listener on 127.0.0.1:2600, smarthost the
# harness's smtp-sink on 127.0.0.1:2526, durable acceptance, DKIM signing
# of every message (From: is in the org domain), a fresh queue per run.
# Environment: SEALPOST_BIN (built binary), BENCH_DKIM (rsa-2048 | ed25519 |
# rsa-2048+ed25519 | off; default rsa-2048), BENCH_DLP (true | false: outbound
# inspection and policy; default true), BENCH_DIR_SP (work directory).
# BENCH_ENCRYPT (off | pgp | smime; default off): every message to the
# harness's recipient (rcpt@dest.bench.example) is encrypted, by a policy
# rule with action encrypt-pgp or encrypt-smime, to a key made once in
# $BENCH_DIR_SP/enc (sqop for OpenPGP; an openssl CA and certificate for
# S/MIME) and added to the key store after start.
# stop appends the run's mean accept latency to $BENCH_DIR_SP/accept-latency.txt.
set -euo pipefail
BIN=${SEALPOST_BIN:-/tmp/bench-bin/sealpost}
DIR=${BENCH_DIR_SP:-/tmp/bench-sealpost}
ALG=${BENCH_DKIM:-rsa-2048}
PORT=${BENCH_SP_PORT:-2600}
case "${1:-}" in
start)
  # Keys survive between runs (key generation is not what we measure).
  mkdir -p "$DIR/keys-$ALG"
  rm -rf "$DIR/data" && mkdir -p "$DIR/data"
  cp -a "$DIR/keys-$ALG" "$DIR/data/keys"
  cat > "$DIR/sealpost.toml" <<TOML
data_dir = "$DIR/data"
[org]
name = "Bench"
domains = ["loadgen.bench.example"]
mail_host = "127.0.0.1:2526"
connector_networks = ["127.0.0.0/8"]
[smtp]
hostname = "gw.bench.example"
inbound_listen = "127.0.0.1:$((PORT+1))"
outbound_listen = "127.0.0.1:$PORT"
max_sessions = 5000
max_sessions_per_ip = 5000
[outbound]
smarthost = "127.0.0.1:2526"
[dkim]
algorithm = "$ALG"
[dlp]
enabled = ${BENCH_DLP:-true}
[inbound]
# ARC sealing (inbound only) needs an RSA key; the bench relays outbound.
arc_seal = $([ "$ALG" = ed25519 ] && echo false || echo true)
[web]
listen = "127.0.0.1:$((PORT+2))"
public_url = "http://127.0.0.1:$((PORT+2))"
TOML
  ENC=${BENCH_ENCRYPT:-off}
  if [ "$ENC" != off ]; then
    E=$DIR/enc; mkdir -p "$E"
    if [ ! -f "$E/rcpt.asc" ]; then
      sqop generate-key "Rcpt <rcpt@dest.bench.example>" > "$E/rcpt.key"
      sqop extract-cert < "$E/rcpt.key" > "$E/rcpt.asc"
      openssl req -x509 -newkey rsa:2048 -nodes -keyout "$E/ca.key" -out "$E/ca.crt" -days 30 -subj /CN=BenchCA \
        -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
      openssl req -newkey rsa:2048 -nodes -keyout "$E/rcpt.pem.key" -out "$E/rcpt.csr" -subj /CN=Rcpt 2>/dev/null
      printf 'subjectAltName=email:rcpt@dest.bench.example\nextendedKeyUsage=emailProtection\nkeyUsage=critical,digitalSignature,keyEncipherment\n' > "$E/ext"
      openssl x509 -req -in "$E/rcpt.csr" -CA "$E/ca.crt" -CAkey "$E/ca.key" -CAcreateserial -days 30 -extfile "$E/ext" -out "$E/rcpt.crt" 2>/dev/null
    fi
    ACTION=encrypt-pgp; [ "$ENC" = smime ] && ACTION=encrypt-smime
    cat >> "$DIR/sealpost.toml" <<TOML
[encryption]
enabled = true
wkd = false
[smime]
enabled = $([ "$ENC" = smime ] && echo true || echo false)
trust_anchors = "$E/ca.crt"
revocation = "off"
[[policy.rule]]
name = "bench-encrypt"
when = 'recipient.domain == "dest.bench.example"'
action = "$ACTION"
reason = "every message encrypted"
TOML
    KEYFILE=$E/rcpt.asc; [ "$ENC" = smime ] && KEYFILE=$E/rcpt.crt
    "$BIN" keys add --config "$DIR/sealpost.toml" "$KEYFILE" >/dev/null
  fi
  "$BIN" serve --config "$DIR/sealpost.toml" ${BENCH_PROFILE:+--cpuprofile "$BENCH_PROFILE"} >"$DIR/sealpost.log" 2>&1 &
  echo $! > "$DIR/pid"
  for _ in $(seq 1 200); do
    if ss -Hltn "sport = :$PORT" | grep -q .; then
      rm -rf "$DIR/keys-$ALG" && cp -a "$DIR/data/keys" "$DIR/keys-$ALG"
      exit 0
    fi
    kill -0 "$(cat "$DIR/pid")" 2>/dev/null || { cat "$DIR/sealpost.log" >&2; exit 1; }
    sleep 0.1
  done
  echo "sealpost did not listen on $PORT" >&2; exit 1 ;;
stop)
  [ -f "$DIR/pid" ] || exit 0
  pid=$(cat "$DIR/pid")
  # Keep the accept-latency histogram of the run (end of DATA to 250).
  python3 - "$((PORT+2))" >>"$DIR/accept-latency.txt" <<'PY' || true
import sys, urllib.request
m = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode()
s = c = 0.0
for line in m.splitlines():
    if line.startswith('sealpost_smtp_accept_seconds_sum{role="outbound"}'): s = float(line.split()[-1])
    if line.startswith('sealpost_smtp_accept_seconds_count{role="outbound"}'): c = float(line.split()[-1])
if c: print("dlp=%s mean_accept_ms=%.3f count=%d" % (__import__("os").environ.get("BENCH_DLP", "true"), 1000 * s / c, c))
PY
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$DIR/pid" ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
