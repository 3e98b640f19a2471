#!/usr/bin/env bash
# scripts/screenshots.sh - retake the console's pictures in docs/ from the
# running demo: starts ./scripts/demo.sh (kept running) on a spare port,
# waits for its notifications to settle, runs cmd/notifyd-screenshots, and
# stops the demo.
#
#   NOTIFYD_DEMO_PORT=18080  port of the demo's API
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export NOTIFYD_DEMO_PORT="${NOTIFYD_DEMO_PORT:-18080}" NOTIFYD_DEMO_KEEP=1
mkdir -p .tmp/demo docs
out=.tmp/demo/screenshots-demo.log
./scripts/demo.sh >"$out" 2>&1 &
demo=$!
trap 'kill -TERM $demo 2>/dev/null; wait $demo 2>/dev/null || true' EXIT

echo "running the demo (output: $out) ..."
for _ in $(seq 1 900); do
	if grep -q "notifyd keeps running" "$out"; then break; fi
	if ! kill -0 $demo 2>/dev/null; then echo "the demo exited:"; cat "$out"; exit 1; fi
	sleep 0.2
done
grep -q "notifyd keeps running" "$out" || { echo "the demo did not finish in 3 minutes:"; cat "$out"; exit 1; }
go run ./cmd/notifyd-screenshots -url "http://127.0.0.1:${NOTIFYD_DEMO_PORT}" -token demo-admin-token -out docs
