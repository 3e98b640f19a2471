#!/usr/bin/env bash
# scripts/soak.sh - notifyd's nemesis soak (cmd/notifyd-soak).
#
#   ./scripts/soak.sh                          2 minutes, a fresh random seed
#   ./scripts/soak.sh --minutes 30 --seed 42   replay seed 42's fault schedule for 30 minutes
#   ./scripts/soak.sh --seed 42 --plan         print seed 42's fault schedule only
#   ./scripts/soak.sh -h                       every flag
#
# Brings up PostgreSQL and Redis like the test command (scripts/services.sh;
# the soak uses databases of its own on that Postgres, and a private Redis
# Sentinel set on free loopback ports, never the shared Redis), builds
# notifyd and the soak, and runs the soak against the fresh notifyd binary.
# It prints its seed first and a summary at the end; the exit status is
# non-zero if the checker found a violation (the summary lists them with
# their ids and the command that replays the run).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

./scripts/services.sh >&2

dir="${TMPDIR:-/tmp}/notifyd-soak-bin-$(id -u)"
mkdir -p "$dir"
version="$(git describe --always --dirty 2>/dev/null || echo dev)"
go build -ldflags "-X github.com/notifyd/notifyd/internal/buildinfo.Version=$version" -o "$dir/notifyd" ./cmd/notifyd
go build -o "$dir/notifyd-soak" ./cmd/notifyd-soak
# exec: Ctrl-C reaches the soak, which stops its processes and drops its databases.
exec "$dir/notifyd-soak" -notifyd "$dir/notifyd" "$@"
