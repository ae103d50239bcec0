#!/usr/bin/env bash
# CI for running bcast locally (issue 5): bcast-local, the JS client, the demo page in headless
# Chromium, the README's run command, and `serve` without redis-server. The Rust tests of
# bcast-local (invoke replays every file in events/, serve end to end) run in `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

# What these steps need: redis-server (serve starts a private one), Debian's chromium, node and
# npm, curl.
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
echo "node $(node --version), $(chromium --version 2>/dev/null | head -n1)"

cargo build --locked -p bcast-local
export BCAST_LOCAL_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/bcast-local"
test -x "$BCAST_LOCAL_BIN"

echo "--- JS client tests against a real bcast-local serve"
(cd clients/js && node --test test/*.test.mjs)

echo "--- demo page in headless Chromium"
export SCREENSHOT_DIR="$PWD/artifacts"
rm -f "$SCREENSHOT_DIR/demo.png"
(cd local/web && npm ci --no-audit --no-fund --loglevel=error && node --test test/*.test.mjs)
test -s "$SCREENSHOT_DIR/demo.png"
echo "screenshot: $SCREENSHOT_DIR/demo.png"

echo "--- the README's run command, as written"
log="$(mktemp)"
cargo run -p bcast-local -- serve >"$log" 2>&1 &
pid=$!
stop_serve() { kill -INT "$pid" 2>/dev/null || true; }
trap stop_serve EXIT
for _ in $(seq 1 600); do
  grep -q "Press Ctrl-C" "$log" && break
  kill -0 "$pid" 2>/dev/null || { cat "$log"; echo "serve exited early"; exit 1; }
  sleep 0.2
done
grep -q "listening on http://127.0.0.1:3000" "$log" || { cat "$log"; echo "serve did not start"; exit 1; }
token="$(sed -n 's/^ *\(eyJ[A-Za-z0-9_.-]*\)$/\1/p' "$log" | head -n1)"
redis_port="$(sed -n 's/.*redis-server on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$log" | head -n1)"
status="$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:3000/login -H "Authorization: Bearer $token")"
[ "$status" = 201 ] || { cat "$log"; echo "POST /login answered $status"; exit 1; }
echo "POST /login with the banner's token: $status"
# The README's curl session, as written, against it.
awk '/^## A session with curl/{f=1} f&&/^```sh/{g=1;next} g&&/^```/{exit} g' README.md >"$log.session"
session="$(bash -euo pipefail "$log.session" 2>&1)" || { echo "$session"; echo "the README's curl session failed"; exit 1; }
grep -q '"data":{"hello": "world"}' <<<"$session" || { echo "$session"; echo "the curl session fetched no event"; exit 1; }
grep -q '"heartbeat_interval":' <<<"$session" || { echo "$session"; echo "the curl session's heartbeat failed"; exit 1; }
echo "the README's curl session: token, login, publish, fetch, heartbeat all answered"
rm -f "$log.session"
kill -INT "$pid"
code=0
wait "$pid" || code=$?
trap - EXIT
[ "$code" = 0 ] || { cat "$log"; echo "serve exited with $code after Ctrl-C"; exit 1; }
if [ -n "$redis_port" ] && (exec 3<>"/dev/tcp/127.0.0.1/$redis_port") 2>/dev/null; then
  echo "the private redis-server on $redis_port outlived serve"; exit 1
fi
echo "stopped by Ctrl-C (exit 0), private redis-server on port $redis_port stopped"
rm -f "$log"

echo "--- serve without redis-server and without REDIS_URL"
empty="$(mktemp -d)"
code=0
out="$(env -u REDIS_URL PATH="$empty" "$BCAST_LOCAL_BIN" serve --port 0 2>&1)" || code=$?
rmdir "$empty"
[ "$code" != 0 ] || { echo "serve without redis-server exited 0"; exit 1; }
grep -q "redis-server was not found" <<<"$out" || { echo "$out"; exit 1; }
grep -q "REDIS_URL=" <<<"$out" || { echo "$out"; exit 1; }
echo "exit $code with: $(head -n1 <<<"$out")"

echo "local: 5 passed, 0 failed"
