#!/usr/bin/env bash
# scripts/bench.sh - notifyd's benchmark (`make bench` is an alias).
#
#   ./scripts/bench.sh                                   every scenario, full size (10-20 min)
#   ./scripts/bench.sh --scenarios throughput,ceiling --n 20000
#   ./scripts/bench.sh --cpuprofile /tmp/notifyd.pprof   profile notifyd during the throughput run
#   ./scripts/bench.sh --smoke                           tiny sizes (CI), well under a minute
#   ./scripts/bench.sh --scenarios throughput --workers 1,2 --queue-shards 4 --repeat 3 --json > bench.json
#                                                        README's Sizing figures (about 15 min)
#   ./scripts/bench.sh --sizing-from bench.json --sizing-payload-bytes 2048
#                                                        the sizing table again, other assumptions
#   ./scripts/bench.sh -h                                every flag
#
# Brings up PostgreSQL and Redis like the test command (scripts/services.sh),
# builds cmd/notifyd-bench with the version stamped from git, and runs it with
# the given arguments. The bench creates and drops its own database and starts
# a redis-server of its own on a free port (--redis-addr host:port: an
# existing Redis, claiming one database index, --redis-db, default 14); see
# cmd/notifyd-bench.
#
# Environment: NOTIFYD_TEST_DATABASE_URL (see scripts/services.sh) is the
# PostgreSQL server used; Redis is the bench's own unless --redis-addr names one.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Progress and service checks go to stderr; stdout is the table and the JSON
# line only, so `./scripts/bench.sh --json > result.json` works.
./scripts/services.sh >&2

version="$(git describe --always --dirty 2>/dev/null || echo dev)"
# One binary per checkout: two worktrees benchmarking at once must not
# overwrite each other's.
bin="${TMPDIR:-/tmp}/notifyd-bench-$(id -u)-$(pwd | cksum | cut -d" " -f1)"
go build -ldflags "-X github.com/notifyd/notifyd/internal/buildinfo.Version=$version" -o "$bin" ./cmd/notifyd-bench
# exec: signals (Ctrl-C) reach the bench directly, which then stops its
# child processes and drops its database.
exec "$bin" "$@"
