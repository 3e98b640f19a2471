#!/usr/bin/env bash
# scripts/services.sh - make sure the services notifyd's tests need are up.
#
#   PostgreSQL  NOTIFYD_TEST_DATABASE_URL  (default postgres://postgres@127.0.0.1:5432/test?sslmode=disable)
#   Redis       NOTIFYD_TEST_REDIS_ADDR    (default 127.0.0.1:6379)
#   Go          `go version` must work (the one prerequisite installed by hand)
#   Runtimes of examples/receivers: python3, node and npm, php with pdo_sqlite
#   promtool    checks deploy/observability's alert rules (Debian package prometheus)
#   chromium    for the console's browser tests (installed when missing)
#
# For each service: if it answers, nothing is done. If it is the local default
# (127.0.0.1 / localhost on the standard port) and not running, it is started;
# if it is not installed, it is installed from Debian packages (apt-get, with
# sudo when not root), configured (trust auth on 127.0.0.1, database created)
# and started. A service that points anywhere else is only checked.
#
# Execute it (./scripts/services.sh) or source it (. scripts/services.sh);
# sourcing also exports the two NOTIFYD_TEST_* variables with their defaults.
# NOTIFYD_SERVICES_TIMEOUT (seconds, default 30) bounds each wait.
# Idempotent; well under a second when everything is already up.
if [[ "${BASH_SOURCE[0]}" != "$0" ]]; then
	# Sourced: remember the caller's shell options to put them back at the end.
	_svc_saved_opts="$(set +o)" # $(...) clears errexit, so take -e from $-
	if [[ $- == *e* ]]; then _svc_saved_opts+=$'\nset -e'; fi
fi
set -euo pipefail

export NOTIFYD_TEST_DATABASE_URL="${NOTIFYD_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
export NOTIFYD_TEST_REDIS_ADDR="${NOTIFYD_TEST_REDIS_ADDR:-127.0.0.1:6379}"

_svc_main() {
	local timeout="${NOTIFYD_SERVICES_TIMEOUT:-30}"
	local apt_updated=0 sudo=""

	say() { printf '%s\n' "$*"; }
	die() {
		printf 'services.sh: ERROR: %s\n' "$*" >&2
		exit 1
	}
	have() { command -v "$1" >/dev/null 2>&1; }

	# Root runs commands directly; anyone else needs sudo for apt-get, the
	# cluster and pg_hba.conf.
	need_root() {
		if [[ $(id -u) -eq 0 ]]; then
			sudo=""
		elif have sudo; then
			sudo="sudo"
		else
			die "need root or sudo to $1"
		fi
	}

	# apt_install PKG...: install Debian packages quietly; the full output
	# goes to a log that is shown if something fails.
	apt_install() {
		need_root "install $*"
		have apt-get || die "apt-get not found: install $* by hand (this script knows Debian/Ubuntu only)"
		local log="${TMPDIR:-/tmp}/notifyd-services-apt.log"
		say "          installing $* from Debian packages (log: $log) ..."
		if [[ $apt_updated -eq 0 ]]; then
			$sudo env DEBIAN_FRONTEND=noninteractive apt-get update >"$log" 2>&1 ||
				printf 'services.sh: warning: apt-get update failed; trying the package lists already on this machine\n' >&2
			apt_updated=1
		fi
		if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1; then
			tail -n 20 "$log" >&2
			die "apt-get install $* failed (full log: $log)"
		fi
	}

	# tcp_open HOST PORT: true if something accepts a TCP connection there.
	tcp_open() {
		timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
	}

	is_local_host() {
		case "$1" in
		127.0.0.1 | localhost | ::1 | "[::1]") return 0 ;;
		*) return 1 ;;
		esac
	}

	# ---------------------------------------------------------------- Go
	have go || die "Go is not installed (or not on PATH). Install Go $(sed -n 's/^go //p' "$(dirname "${BASH_SOURCE[0]}")/../go.mod" 2>/dev/null || echo 1.26)+ from https://go.dev/dl/ and put its bin/ on PATH; it is the only prerequisite installed by hand."
	local gov
	gov="$(go version 2>&1)" || die "'go version' failed: $gov"
	say "go:       ${gov#go version }"

	# ---------------------------------------------------------------- PostgreSQL
	local url="$NOTIFYD_TEST_DATABASE_URL"
	local rest="${url#*://}"
	rest="${rest%%\?*}"
	local authority="${rest%%/*}" dbname=""
	[[ "$rest" == */* ]] && dbname="${rest#*/}"
	local pguser="postgres"
	if [[ "$authority" == *@* ]]; then
		pguser="${authority%%@*}"
		pguser="${pguser%%:*}"
		authority="${authority##*@}"
	fi
	local pghost pgport
	if [[ "$authority" == \[*\]* ]]; then # [::1]:5432
		pghost="${authority%%]*}]"
		pgport="${authority#*]}"
		pgport="${pgport#:}"
	else
		pghost="${authority%%:*}"
		pgport=""
		[[ "$authority" == *:* ]] && pgport="${authority##*:}"
	fi
	pghost="${pghost:-127.0.0.1}"
	pgport="${pgport:-5432}"
	dbname="${dbname:-$pguser}"
	local pghost_plain="${pghost#[}"
	pghost_plain="${pghost_plain%]}"

	pg_answers() {
		if have pg_isready; then
			pg_isready -q -h "$pghost_plain" -p "$pgport" -t 2 >/dev/null 2>&1
		else
			tcp_open "$pghost_plain" "$pgport"
		fi
	}
	# Can we log in to the URL's database? (needs psql; true if psql is missing)
	pg_login() {
		have psql || return 0
		PGCONNECT_TIMEOUT=3 psql -w "$url" -XAtqc 'select 1' >/dev/null 2>&1
	}
	pg_wait() {
		local i
		for ((i = 0; i < timeout * 5; i++)); do
			pg_answers && return 0
			sleep 0.2
		done
		die "PostgreSQL at $pghost_plain:$pgport did not answer within ${timeout}s (logs: /var/log/postgresql/)"
	}

	local pg_local=0
	if is_local_host "$pghost" && [[ "$pgport" == 5432 ]]; then pg_local=1; fi

	if pg_answers && pg_login; then
		say "postgres: up at $pghost_plain:$pgport (database $dbname), nothing to do"
	elif [[ $pg_local -eq 0 ]]; then
		if pg_answers; then
			die "PostgreSQL at $pghost_plain:$pgport answers, but cannot log in with NOTIFYD_TEST_DATABASE_URL=$url (not local: only checked, nothing changed)"
		fi
		die "PostgreSQL at $pghost_plain:$pgport does not answer (NOTIFYD_TEST_DATABASE_URL points off this machine's default, so it is only checked, not started)"
	else
		local did=()
		if ! pg_answers; then
			if ! have pg_ctlcluster || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
				apt_install postgresql
				did+=("installed")
			fi
			need_root "start PostgreSQL"
			local ver
			ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
			if [[ -z "$ver" || ! -d "/etc/postgresql/$ver/main" ]]; then
				ver="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
				$sudo pg_createcluster "$ver" main >/dev/null || die "pg_createcluster $ver main failed"
				did+=("created cluster $ver/main")
			fi
			if ! pg_answers; then
				$sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main start ||
					die "could not start PostgreSQL cluster $ver/main (see /var/log/postgresql/postgresql-$ver-main.log)"
				did+=("started cluster $ver/main")
			fi
			pg_wait
		fi
		have psql || apt_install postgresql-client
		# Trust auth for TCP connections from this machine (tests connect as
		# postgres without a password).
		local admin_url="postgres://postgres@127.0.0.1:$pgport/postgres?sslmode=disable"
		if ! PGCONNECT_TIMEOUT=3 psql -w "$admin_url" -XAtqc 'select 1' >/dev/null 2>&1; then
			need_root "configure PostgreSQL authentication"
			local ver hba
			ver="$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)"
			hba="/etc/postgresql/$ver/main/pg_hba.conf"
			$sudo test -f "$hba" || die "cannot log in as postgres@127.0.0.1 and no $hba to fix"
			if ! $sudo grep -q 'notifyd scripts/services.sh' "$hba"; then
				# pg_hba.conf is first-match: put the trust rules on top.
				$sudo sed -i '1i # added by notifyd scripts/services.sh: trust local TCP logins for tests\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba" ||
					die "could not edit $hba"
			fi
			$sudo pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null || die "could not reload PostgreSQL $ver/main"
			sleep 0.3
			PGCONNECT_TIMEOUT=3 psql -w "$admin_url" -XAtqc 'select 1' >/dev/null 2>&1 ||
				die "still cannot log in as postgres@127.0.0.1:$pgport without a password after editing $hba"
			did+=("trust auth for 127.0.0.1 in $hba")
		fi
		local exists
		exists="$(PGCONNECT_TIMEOUT=3 psql -w "$admin_url" -XAtqc "select 1 from pg_database where datname = '${dbname//\'/\'\'}'" 2>&1)" ||
			die "could not query PostgreSQL: $exists"
		if [[ "$exists" != 1 ]]; then
			PGCONNECT_TIMEOUT=3 psql -w "$admin_url" -XAtqc "create database \"${dbname//\"/\"\"}\"" >/dev/null ||
				die "could not create database $dbname"
			did+=("created database $dbname")
		fi
		pg_login || die "PostgreSQL answers but login with NOTIFYD_TEST_DATABASE_URL=$url fails: $(PGCONNECT_TIMEOUT=3 psql -w "$url" -XAtqc 'select 1' 2>&1 | head -n 1)"
		local what="" d
		for d in "${did[@]}"; do what+="${what:+, }$d"; done
		say "postgres: ${what:-checked}; up at $pghost_plain:$pgport (database $dbname)"
	fi

	# ---------------------------------------------------------------- Redis
	local raddr="$NOTIFYD_TEST_REDIS_ADDR"
	local rhost="${raddr%:*}" rport="${raddr##*:}"
	[[ "$raddr" == *:* ]] || rport=6379
	rhost="${rhost#[}"
	rhost="${rhost%]}"
	rhost="${rhost:-127.0.0.1}"

	redis_answers() {
		if have redis-cli; then
			[[ "$(timeout 3 redis-cli -h "$rhost" -p "$rport" ping 2>/dev/null)" == PONG ]]
		else
			timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2" && printf "PING\r\n" >&3 && IFS= read -r l <&3 && [[ "$l" == +PONG* ]]' _ "$rhost" "$rport" 2>/dev/null
		fi
	}

	if redis_answers; then
		say "redis:    up at $rhost:$rport, nothing to do"
	elif ! is_local_host "$rhost" || [[ "$rport" != 6379 ]]; then
		die "Redis at $rhost:$rport does not answer PING (NOTIFYD_TEST_REDIS_ADDR points off this machine's default, so it is only checked, not started)"
	else
		local rdid=""
		if ! have redis-server; then
			apt_install redis-server
			rdid="installed, "
		fi
		# The Debian package may have started its own server already.
		if ! redis_answers; then
			local rlog="${TMPDIR:-/tmp}/notifyd-redis.log"
			redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
				--dir "${TMPDIR:-/tmp}" --logfile "$rlog" >/dev/null ||
				die "could not start redis-server (see $rlog)"
			rdid+="started redis-server"
			local i ok=0
			for ((i = 0; i < timeout * 5; i++)); do
				if redis_answers; then
					ok=1
					break
				fi
				sleep 0.2
			done
			[[ $ok -eq 1 ]] || die "Redis at $rhost:$rport did not answer PING within ${timeout}s (log: $rlog)"
		fi
		say "redis:    ${rdid%, }; up at $rhost:$rport"
	fi

	# The fault tests start private redis-server processes, as masters,
	# replicas and sentinels (redis-server --sentinel), even when the shared
	# Redis runs elsewhere.
	if ! have redis-server; then
		apt_install redis-server
	fi
	if ! sentinel_mode_works; then
		# Some distributions ship Sentinel mode in a package of its own.
		apt_install redis-sentinel
		sentinel_mode_works || die "redis-server --sentinel does not run (needed by internal/faults' Sentinel tests)"
	fi
	say "sentinel: redis-server --sentinel available"

	# examples/receivers' test runs the example receivers in their own
	# languages; it skips a language whose runtime is missing, so install
	# them here (Node.js's packages come from the npm registry in the test).
	local missing=()
	have python3 || missing+=(python3)
	have node || missing+=(nodejs)
	have npm || missing+=(npm)
	have php || missing+=(php-cli)
	if ! have php || ! php -m 2>/dev/null | grep -qx pdo_sqlite; then
		missing+=(php-sqlite3)
	fi
	if [[ ${#missing[@]} -gt 0 ]]; then
		apt_install "${missing[@]}"
	fi
	say "examples: python3, node, npm, php with pdo_sqlite available"
	# deploy/'s tests check the alert rules with promtool, which Debian ships
	# in the prometheus package. Only the tool is wanted: a Prometheus server
	# the package may have started (systemd) is stopped and disabled again.
	if ! have promtool; then
		apt_install prometheus
		if have systemctl; then
			$sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
		fi
	fi
	say "promtool: $(promtool --version 2>&1 | head -n 1)"
	# The console's browser tests (query/console) drive Debian's chromium
	# headless; they skip, saying why, only where it cannot be installed.
	if have chromium; then
		say "chromium: $(command -v chromium), nothing to do"
	elif [[ $(id -u) -ne 0 ]] && ! have sudo; then
		printf 'services.sh: warning: chromium missing and no root or sudo to install it: the browser tests will skip\n' >&2
	else
		apt_install chromium
		say "chromium: installed"
	fi
}

# sentinel_mode_works: redis-server starts in Sentinel mode (on a config that
# listens nowhere, so it exits at once; its log lines then carry the
# Sentinel role letter X).
sentinel_mode_works() {
	local conf out
	conf="$(mktemp "${TMPDIR:-/tmp}/notifyd-sentinel-check.XXXXXX")"
	printf 'port 0\n' >"$conf"
	out="$(timeout 5 redis-server "$conf" --sentinel 2>&1 || true)"
	rm -f "$conf"
	[[ "$out" == *":X "*"Configured to not listen anywhere"* ]] # X: the Sentinel role in the log
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	_svc_main "$@"
else
	# Sourced: run in a subshell so a failure returns instead of killing the
	# caller's shell.
	_svc_rc=0
	(_svc_main "$@") || _svc_rc=$?
	eval "$_svc_saved_opts"
	unset _svc_saved_opts
	# The status of the sourcing `.` command; a caller under `set -e` stops here.
	(exit "$_svc_rc")
fi
