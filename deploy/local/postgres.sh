#!/usr/bin/env bash
# postgres.sh: a private PostgreSQL cluster on 127.0.0.1 for tests and the demo (not the system
# service).
#
# usage:
#   postgres.sh start DIR PORT  create the cluster in DIR/data on first use, start it, wait until
#                               pg_isready, print the DSN of the postgres database on stdout
#   postgres.sh stop DIR        fast shutdown (clients are disconnected), wait for exit
#   postgres.sh kill DIR        immediate shutdown, like a crash: recovery runs on the next start
#   postgres.sh status DIR      print the DSN and exit 0 when running, exit 3 if not
#
# For speed the cluster runs with fsync = off, synchronous_commit = off and full_page_writes =
# off: committed data survives a server crash or kill but NOT a crash of the machine, and then the
# cluster may be corrupt. This is for tests and demos only; never copy these settings to a
# production server. Authentication is "trust" for everybody connecting to 127.0.0.1.
#
# PostgreSQL refuses to run as root. Run as root, this script runs initdb and the server as the
# operating-system user postgres (PG_OS_USER), makes DIR owned by that user and lets it traverse
# DIR's parents: those under the temp dir ($TMPDIR or /tmp, e.g. t.TempDir()) get o+x, for
# others it stops with an error. Run as another user, it runs everything as that user.
#
# environment:
#   PG_BINDIR             directory of initdb, pg_ctl and pg_isready (default: the newest
#                         /usr/lib/postgresql/*/bin, then PATH)
#   PG_OS_USER            operating-system user that runs the server when started as root
#                         (default postgres)
#   PG_START_TIMEOUT      seconds to wait for readiness (default 60)
#   PG_STOP_TIMEOUT       seconds to wait for a fast shutdown before an immediate one (default 60)
#   LOCALSVC_OWNER_FD     read end of a pipe whose write end the caller keeps open: a watchdog
#                         stops the cluster when that pipe closes, i.e. when the caller exits
#   LOCALSVC_REMOVE_DIR   1: that watchdog also removes DIR after stopping the cluster
#
# Files in DIR: data/ (the cluster, with localsvc.conf for the settings above), postgres.log,
# initdb.log, postgres.dsn and the Unix socket (unless DIR's path is too long for one).
# Exit status: 0 ok, 1 error, 2 usage, 3 not running (status), 69 PostgreSQL missing (run
# install.sh).
set -euo pipefail

SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
readonly SELF

usage() {
	sed -n '/^# usage:/,/^#$/s/^# \{0,1\}//p' "$SELF" >&2
	exit 2
}

die() {
	echo "postgres.sh: $*" >&2
	exit 1
}

log_tail() {
	local f
	for f in "$DIR/initdb.log" "$LOG"; do
		[[ -s "$f" ]] || continue
		echo "postgres.sh: last lines of $f:" >&2
		tail -n 30 "$f" | sed 's/^/  | /' >&2
	done
}

valid_port() { [[ "$1" =~ ^[0-9]+$ ]] && (("$1" > 0 && "$1" < 65536)); }

# port_open succeeds when something accepts TCP connections on 127.0.0.1:$1.
port_open() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

find_bindir() {
	local d best=""
	if [[ -n "${PG_BINDIR:-}" ]]; then
		best="$PG_BINDIR"
	else
		for d in /usr/lib/postgresql/*/bin; do
			[[ -x "$d/pg_ctl" ]] || continue
			if [[ -z "$best" ]] || [[ "$(printf '%s\n%s\n' "$best" "$d" | sort -V | tail -n 1)" == "$d" ]]; then
				best="$d"
			fi
		done
		if [[ -z "$best" ]] && command -v pg_ctl >/dev/null 2>&1; then
			best="$(dirname -- "$(command -v pg_ctl)")"
		fi
	fi
	if [[ -z "$best" || ! -x "$best/initdb" || ! -x "$best/pg_ctl" || ! -x "$best/pg_isready" ]]; then
		echo "postgres.sh: PostgreSQL server programs (initdb, pg_ctl, pg_isready) not found${best:+ in $best}: run deploy/local/install.sh" >&2
		exit 69
	fi
	printf '%s\n' "$best"
}

# as_pg runs a command as the server's operating-system user.
as_pg() { "${PG_AS[@]}" "$@"; }

# postmaster_pid prints the pid in DATA/postmaster.pid, if any.
postmaster_pid() { head -n 1 "$DATA/postmaster.pid" 2>/dev/null || true; }

# running succeeds when pid $1 is alive and is the postmaster of this DIR: a zombie (empty
# cmdline) or a recycled pid does not count.
running() {
	local pid="$1" cmdline
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	cmdline="$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null)" || return 1
	[[ "$cmdline" == *"-D $DATA "* ]]
}

# ensure_reachable lets PG_OS_USER enter DIR (run as root only).
ensure_reachable() {
	local tmp a parts p
	chown -- "$PG_OS_USER:" "$DIR" || die "cannot chown $DIR to $PG_OS_USER"
	as_pg test -x "$DIR" -a -w "$DIR" && return
	tmp="$(cd -- "${TMPDIR:-/tmp}" && pwd -P)"
	# Walk down from / so that each parent is fixed before its children are tested.
	a=""
	IFS=/ read -r -a parts <<<"${DIR#/}"
	for p in "${parts[@]}"; do
		a="$a/$p"
		[[ "$a" == "$DIR" ]] && break
		as_pg test -x "$a" && continue
		case "$(cd -- "$a" && pwd -P)/" in
		"$tmp"/?*) chmod o+x -- "$a" || die "cannot chmod o+x $a" ;;
		*) die "user $PG_OS_USER cannot enter $a (needed for $DIR): chmod o+x it or choose a DIR under $tmp" ;;
		esac
	done
	as_pg test -x "$DIR" -a -w "$DIR" || die "user $PG_OS_USER cannot write $DIR"
}

write_config() {
	local port="$1" sockdir="$DIR"
	# A Unix socket path is limited to 107 bytes; without one, clients use TCP (as ours do).
	if ((${#DIR} + 20 > 107)); then
		sockdir=""
	fi
	cat >"$DATA/localsvc.conf" <<EOF
# Generated by deploy/local/postgres.sh; rewritten on every start.
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${sockdir}'
max_connections = 200
# Tests and demos only: fast, but a machine crash can corrupt the cluster (see postgres.sh).
fsync = off
synchronous_commit = off
full_page_writes = off
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
EOF
	if ((EUID == 0)); then
		chown -- "$PG_OS_USER:" "$DATA/localsvc.conf"
	fi
	if ! grep -qx "include_if_exists = 'localsvc.conf'" "$DATA/postgresql.conf"; then
		printf '\n# deploy/local/postgres.sh\ninclude_if_exists = '\''localsvc.conf'\''\n' >>"$DATA/postgresql.conf"
	fi
}

dsn() { printf 'postgres://postgres@127.0.0.1:%s/postgres?sslmode=disable\n' "$1"; }

cmd_start() {
	(($# == 1)) || usage
	local port="$1" timeout="${PG_START_TIMEOUT:-60}" bindir pid owner_fd=""
	valid_port "$port" || die "bad port: $port"
	[[ "$timeout" =~ ^[0-9]+$ ]] || die "bad PG_START_TIMEOUT: $timeout"
	bindir="$(find_bindir)"
	if ((EUID == 0)); then
		id -u "$PG_OS_USER" >/dev/null 2>&1 || die "no operating-system user $PG_OS_USER to run PostgreSQL as root"
		ensure_reachable
	fi

	pid="$(postmaster_pid)"
	if running "$pid"; then
		[[ "$(cat "$DSNFILE" 2>/dev/null)" == "$(dsn "$port")" ]] ||
			die "already running in $DIR (pid $pid) on another port: stop it first"
		echo "postgres.sh: already running (pid $pid)" >&2
		dsn "$port"
		return
	fi
	port_open "$port" && die "port $port on 127.0.0.1 is already in use"

	if [[ -n "${LOCALSVC_OWNER_FD:-}" ]]; then
		owner_fd="$LOCALSVC_OWNER_FD"
		[[ "$owner_fd" =~ ^[0-9]+$ && -e "/proc/$$/fd/$owner_fd" ]] ||
			die "LOCALSVC_OWNER_FD=$owner_fd is not an open file descriptor"
	fi

	if [[ ! -f "$DATA/PG_VERSION" ]]; then
		# --no-sync: consistent with fsync = off; --locale=C: the same collation everywhere.
		as_pg "$bindir/initdb" -D "$DATA" -U postgres -A trust -E UTF8 --locale=C --no-sync \
			>"$DIR/initdb.log" 2>&1 || {
			log_tail
			die "initdb failed (log: $DIR/initdb.log)"
		}
	fi
	write_config "$port"

	# Until the server is ready, any failure or SIGINT/SIGTERM (a cancelled caller) stops it.
	trap 'running "$(postmaster_pid)" && as_pg "$bindir/pg_ctl" -D "$DATA" -m immediate -w stop >&2' EXIT
	trap 'echo "postgres.sh: interrupted" >&2; exit 1' INT TERM
	# pg_ctl -w waits until the server accepts connections; setsid keeps it out of the caller's
	# session and process group. The server's output goes to the log, never to a caller pipe.
	if [[ -n "$owner_fd" ]]; then
		setsid "${PG_AS[@]}" "$bindir/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$timeout" start \
			</dev/null >&2 {owner_fd}<&- || {
			log_tail
			die "pg_ctl start failed (log: $LOG)"
		}
	else
		setsid "${PG_AS[@]}" "$bindir/pg_ctl" -D "$DATA" -l "$LOG" -w -t "$timeout" start \
			</dev/null >&2 || {
			log_tail
			die "pg_ctl start failed (log: $LOG)"
		}
	fi
	as_pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 10 || {
		log_tail
		die "pg_isready: the server does not accept connections on 127.0.0.1:$port (log: $LOG)"
	}
	pid="$(postmaster_pid)"
	running "$pid" || die "postmaster.pid does not name a running postmaster"

	trap - EXIT INT TERM

	dsn "$port" >"$DSNFILE"
	if [[ -n "$owner_fd" ]]; then
		setsid bash "$SELF" _watchdog "$DIR" "$pid" </dev/null >>"$DIR/watchdog.log" 2>&1 &
	fi
	echo "postgres.sh: postgres (pid $pid) ready on 127.0.0.1:$port, data in $DATA" >&2
	dsn "$port"
}

# shutdown stops the cluster with pg_ctl mode $1 (fast or immediate).
shutdown() {
	local mode="$1" bindir timeout="${PG_STOP_TIMEOUT:-60}"
	bindir="$(find_bindir)"
	if as_pg "$bindir/pg_ctl" -D "$DATA" -m "$mode" -w -t "$timeout" stop >&2; then
		return
	fi
	[[ "$mode" == immediate ]] && die "pg_ctl stop -m immediate failed (log: $LOG)"
	echo "postgres.sh: fast shutdown failed or timed out: immediate shutdown" >&2
	as_pg "$bindir/pg_ctl" -D "$DATA" -m immediate -w -t 30 stop >&2 ||
		die "pg_ctl stop -m immediate failed (log: $LOG)"
}

cmd_stop() {
	(($# == 0)) || usage
	if ! running "$(postmaster_pid)"; then
		echo "postgres.sh: not running in $DIR" >&2
		return
	fi
	shutdown fast
}

cmd_kill() {
	(($# == 0)) || usage
	running "$(postmaster_pid)" || die "not running in $DIR"
	shutdown immediate
}

cmd_status() {
	(($# == 0)) || usage
	if running "$(postmaster_pid)"; then
		cat "$DSNFILE"
		return
	fi
	echo "postgres.sh: not running in $DIR" >&2
	exit 3
}

# _watchdog DIR PID: internal. Blocks on LOCALSVC_OWNER_FD until the caller's write end closes,
# then stops the cluster if PID is still its postmaster (it may have been stopped already).
cmd_watchdog() {
	local pid="$1" fd="$LOCALSVC_OWNER_FD"
	while read -r -u "$fd" _line; do :; done
	if running "$pid"; then
		echo "postgres.sh: owner gone: stopping postgres (pid $pid)"
		shutdown fast
	fi
	if [[ "${LOCALSVC_REMOVE_DIR:-}" == 1 ]]; then
		rm -rf -- "$DIR"
	fi
}

(($# >= 2)) || usage
cmd="$1"
[[ -n "$2" ]] || die "empty DIR"
if [[ "$cmd" == start ]]; then
	mkdir -p -- "$2" || die "cannot create $2"
elif [[ ! -d "$2" ]]; then
	# Nothing was ever started there.
	[[ "$cmd" == status ]] && exit 3
	[[ "$cmd" == stop ]] && exit 0
	die "no such directory: $2"
fi
DIR="$(cd -- "$2" && pwd -P)"
PG_OS_USER="${PG_OS_USER:-postgres}"
PG_AS=()
if ((EUID == 0)); then
	PG_AS=(runuser -u "$PG_OS_USER" --)
fi
readonly DIR DATA="$DIR/data" LOG="$DIR/postgres.log" DSNFILE="$DIR/postgres.dsn" PG_OS_USER PG_AS
shift 2

case "$cmd" in
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
kill) cmd_kill "$@" ;;
status) cmd_status "$@" ;;
_watchdog) cmd_watchdog "$@" ;;
*) usage ;;
esac
