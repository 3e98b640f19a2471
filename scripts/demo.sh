#!/usr/bin/env bash
# scripts/demo.sh - see notifyd work in about a minute (`make demo` is an alias).
#
# Starts PostgreSQL and Redis if needed (scripts/services.sh), builds notifyd,
# runs `notifyd all` against a database and a Redis database of the demo's
# own, then runs examples/demo: two merchant endpoints on loopback (one
# healthy and verifying signatures, one that always answers 500), a few
# notifications to each, and a table of what happened.
#
# Safe on a shared host: it only ever drops or flushes what it made itself.
#   PostgreSQL  database notifyd_demo_<user>, marked with a COMMENT; an
#               existing database of that name without the mark is refused.
#   Redis       one database index (15 down to 1, the first free one), claimed
#               the way the tests claim theirs (key notifyd:testenv:db:<n> in
#               DB 0, released at exit) and marked with the key
#               notifyd:demo:owner; an index holding keys without the mark is
#               skipped (or refused, when named).
# Each run empties its own database and index first; both are kept after
# the run for a look (psql, redis-cli) until the next one.
#
#   NOTIFYD_DEMO_PORT=8080        API port
#   NOTIFYD_DEMO_OPS_ADDR         ops listener (default 127.0.0.1:0, any free port)
#   NOTIFYD_DEMO_DATABASE         database name (default notifyd_demo_<user>)
#   NOTIFYD_DEMO_REDIS_DB         use only this Redis index
#   NOTIFYD_DEMO_REDIS_CLAIM      the caller already holds that index's claim
#                                 (its value in notifyd:testenv:db:<n>)
#   demo.sh --prepare-only        make the database and index ready, then stop
#   NOTIFYD_DEMO_KEEP=1           keep notifyd running after the demo (for the console) until Ctrl-C
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

die() {
	printf 'demo.sh: %s\n' "$*" >&2
	exit 1
}

./scripts/services.sh >/dev/null
port="${NOTIFYD_DEMO_PORT:-8080}"
admin_url="${NOTIFYD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
redis_addr="${NOTIFYD_TEST_REDIS_ADDR:-127.0.0.1:6379}"
user="$(id -un | tr 'A-Z' 'a-z' | tr -c 'a-z0-9_\n' '_')"
db_name="${NOTIFYD_DEMO_DATABASE:-notifyd_demo_${user}}"
mark="made by notifyd scripts/demo.sh"
[[ $db_name =~ ^[a-z_][a-z0-9_]{0,62}$ ]] || die "database name \"$db_name\" must be lower-case letters, digits and _"

# prepare_database drops and re-creates the demo's database, unless a
# database of that name exists without the demo's mark.
prepare_database() {
	local sql=(env PGOPTIONS=--client-min-messages=warning psql "$admin_url" -XAtq -v ON_ERROR_STOP=1)
	local found
	found="$("${sql[@]}" -c "SELECT coalesce(shobj_description(oid, 'pg_database'), '<none>') FROM pg_database WHERE datname = '$db_name'")"
	if [[ -n $found && $found != "$mark" ]]; then
		die "database $db_name exists and was not made by the demo (its comment is \"$found\"); not dropping it. Drop it yourself, or pick another name: NOTIFYD_DEMO_DATABASE=..."
	fi
	"${sql[@]}" -c "DROP DATABASE IF EXISTS $db_name WITH (FORCE)" -c "CREATE DATABASE $db_name" \
		-c "COMMENT ON DATABASE $db_name IS '$mark'"
}

rcli() { redis-cli -h "${redis_addr%:*}" -p "${redis_addr##*:}" "$@"; }
claim_token="demo-$$-$(date +%s)"
redis_db=""
release_claim() {
	# Only a claim this run took; compare and delete in one step.
	if [[ -n $redis_db && -z ${NOTIFYD_DEMO_REDIS_CLAIM:-} ]]; then
		rcli -n 0 EVAL "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0" \
			1 "notifyd:testenv:db:$redis_db" "$claim_token" >/dev/null || true
	fi
}

# use_redis_db N: claim index N (unless the caller holds the claim) and
# empty it, if it is empty or the demo's; else say why not and fail.
use_redis_db() {
	local n=$1 claim="notifyd:testenv:db:$1" owner size
	if [[ -n ${NOTIFYD_DEMO_REDIS_CLAIM:-} ]]; then
		[[ "$(rcli -n 0 GET "$claim")" == "$NOTIFYD_DEMO_REDIS_CLAIM" ]] || { echo "its claim is not NOTIFYD_DEMO_REDIS_CLAIM"; return 1; }
	elif [[ "$(rcli -n 0 SET "$claim" "$claim_token" NX EX 3600)" != OK ]]; then
		echo "in use by a test run or another demo ($claim)"
		return 1
	fi
	redis_db=$n
	owner="$(rcli -n "$n" GET notifyd:demo:owner)"
	size="$(rcli -n "$n" DBSIZE)"
	if [[ $size != 0 && $owner != "$mark" ]]; then
		release_claim
		redis_db=""
		echo "it holds $size keys the demo did not make"
		return 1
	fi
	rcli -n "$n" FLUSHDB >/dev/null
	rcli -n "$n" SET notifyd:demo:owner "$mark" >/dev/null
}

prepare_redis() {
	local n why
	if [[ -n ${NOTIFYD_DEMO_REDIS_DB:-} ]]; then
		why="$(use_redis_db "$NOTIFYD_DEMO_REDIS_DB")" ||
			die "not using Redis database $NOTIFYD_DEMO_REDIS_DB: $why; not flushing it. Pick another: NOTIFYD_DEMO_REDIS_DB=..."
		return
	fi
	for n in $(seq 15 -1 1); do
		if use_redis_db "$n" >/dev/null; then return; fi
	done
	die "no Redis database index from 1 to 15 is free (empty, or the demo's, and not claimed by a test run); set NOTIFYD_DEMO_REDIS_DB to one you can spare"
}

trap release_claim EXIT
prepare_database
prepare_redis
echo "demo database $db_name and Redis database $redis_db are ready (emptied; both marked as the demo's)"
if [[ ${1:-} == --prepare-only ]]; then exit 0; fi

mkdir -p .tmp/demo bin
echo "building notifyd..."
go build -o bin/notifyd ./cmd/notifyd

export NOTIFYD_DATABASE_URL="${admin_url/\/test?/\/$db_name?}"
export NOTIFYD_REDIS_URL="redis://${redis_addr}/${redis_db}"
export NOTIFYD_OPS_ADDR="${NOTIFYD_DEMO_OPS_ADDR:-127.0.0.1:0}"
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
trap 'kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null; release_claim; echo "notifyd stopped; its log is in $log"' EXIT

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
if [[ -n "${NOTIFYD_DEMO_KEEP:-}" ]]; then
	echo "notifyd keeps running (NOTIFYD_DEMO_KEEP); Ctrl-C stops it"
	wait $pid
fi
