#!/usr/bin/env bash
# scripts/demo.sh - see notifyd work in about a minute (`make demo` is an alias).
#
# Starts PostgreSQL and Redis if needed (scripts/services.sh), builds notifyd,
# runs `notifyd all` against a fresh database `notifyd_demo` and Redis DB 13,
# then runs examples/demo: two merchant endpoints on loopback (one healthy
# and verifying signatures, one that always answers 500), a few
# notifications to each, and a table of what happened.
#
#   NOTIFYD_DEMO_PORT=8080  API port
#   NOTIFYD_DEMO_KEEP=1     keep notifyd running after the demo (for the console) until Ctrl-C
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/services.sh
port="${NOTIFYD_DEMO_PORT:-8080}"
mkdir -p .tmp/demo bin
echo "building notifyd..."
go build -o bin/notifyd ./cmd/notifyd

admin_url="${NOTIFYD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
psql "$admin_url" -q -c "DROP DATABASE IF EXISTS notifyd_demo WITH (FORCE)" -c "CREATE DATABASE notifyd_demo"
redis-cli -n 13 flushdb >/dev/null

export NOTIFYD_DATABASE_URL="${admin_url/\/test?/\/notifyd_demo?}"
export NOTIFYD_REDIS_URL="redis://127.0.0.1:6379/13"
# Development mode: the demo's short token, private targets and password-less
# Redis are allowed (each logged as a warning); production would refuse them.
export NOTIFYD_ENV=development
export NOTIFYD_ADMIN_TOKEN="demo-admin-token"
export NOTIFYD_ALLOW_PRIVATE_TARGETS=true # the demo's merchants live on 127.0.0.1
export NOTIFYD_HTTP_ADDR="127.0.0.1:${port}"
export NOTIFYD_LOG_FORMAT=text
# The demo's broken merchant fails 12 times in a row; keep its circuit closed
# so every retry shows on schedule (production default: 10 failures open it).
export NOTIFYD_BREAKER_FAILURES=50

log=.tmp/demo/notifyd.log
bin/notifyd all >"$log" 2>&1 &
pid=$!
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; echo "notifyd stopped; its log is in $log"' EXIT

echo "waiting for notifyd on :${port}..."
for _ in $(seq 1 100); do
	if curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null 2>&1; then break; fi
	if ! kill -0 $pid 2>/dev/null; then echo "notifyd exited:"; cat "$log"; exit 1; fi
	sleep 0.2
done
curl -fsS "http://127.0.0.1:${port}/readyz" >/dev/null
echo "notifyd is ready (API http://127.0.0.1:${port}, admin token ${NOTIFYD_ADMIN_TOKEN})"
echo "console: http://127.0.0.1:${port}/console/ (log in with the admin token ${NOTIFYD_ADMIN_TOKEN})"
echo
go run ./examples/demo -api "http://127.0.0.1:${port}" -token "$NOTIFYD_ADMIN_TOKEN"
echo "console: http://127.0.0.1:${port}/console/ (log in with the admin token ${NOTIFYD_ADMIN_TOKEN})"
if [[ -n "${NOTIFYD_DEMO_KEEP:-}" ]]; then echo "notifyd keeps running (NOTIFYD_DEMO_KEEP); Ctrl-C stops it"; wait $pid; fi
