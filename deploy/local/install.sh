#!/usr/bin/env bash
# install.sh: install the programs that deploy/local needs when they are missing.
#
#   Debian packages  mosquitto (mosquitto, mosquitto_passwd), postgresql (initdb, pg_ctl,
#                    pg_isready), protobuf-compiler (protoc), curl
#   Go program       influxd 1.8.10, built with `go install` into $(go env GOPATH)/bin
#
# Idempotent and fast when everything is present: it only looks for the programs. It runs
# `apt-get update` once, and only when a package has to be installed, and prints one line per
# thing installed. Concurrent runs (parallel test binaries on a clean CI machine) are serialised
# with flock. Needs root or sudo for apt-get, and the Go toolchain for influxd.
set -euo pipefail

readonly INFLUXDB_MODULE=github.com/influxdata/influxdb
readonly INFLUXDB_VERSION=v1.8.10

die() {
	echo "install.sh: $*" >&2
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

# PostgreSQL server programs live outside PATH on Debian (/usr/lib/postgresql/N/bin).
have_postgres_server() {
	local d
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/pg_isready" ]] && return 0
	done
	have initdb && have pg_ctl && have pg_isready
}

have_mosquitto() {
	{ have mosquitto || [[ -x /usr/sbin/mosquitto ]]; } && have mosquitto_passwd
}

influxd_path() {
	local gobin gopath
	{ read -r gobin && read -r gopath; } < <(go env GOBIN GOPATH)
	[[ -n "$gobin" ]] || gobin="${gopath%%:*}/bin"
	printf '%s/influxd\n' "$gobin"
}

# Serialise concurrent runs; the lock file lives in the temp dir so that no root is needed.
lock="${TMPDIR:-/tmp}/parkcarbon-deploy-local-install.lock"
exec 9>>"$lock" || die "cannot open lock file $lock"
flock 9

packages=()
have_mosquitto || packages+=(mosquitto)
have_postgres_server || packages+=(postgresql)
have protoc || packages+=(protobuf-compiler)
have curl || packages+=(curl)

if ((${#packages[@]} > 0)); then
	have apt-get || die "missing ${packages[*]} and apt-get is not available: install them by hand"
	sudo=()
	if ((EUID != 0)); then
		have sudo || die "missing ${packages[*]}: run as root or install sudo"
		sudo=(sudo)
	fi
	apt_log="$(mktemp)"
	trap 'rm -f "$apt_log"' EXIT
	apt_get() {
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "$@" >"$apt_log" 2>&1 || {
			tail -n 20 "$apt_log" >&2
			die "apt-get $* failed"
		}
	}
	apt_get update -q
	# The postgresql package may also create and start the distribution's own cluster on port
	# 5432; deploy/local never uses it (it runs its own clusters in its own directories).
	apt_get install -y -q --no-install-recommends "${packages[@]}"
	for p in "${packages[@]}"; do
		echo "installed $p (apt)"
	done
fi

have go || die "the Go toolchain is needed to build influxd: install Go and re-run"
influxd="$(influxd_path)"
if [[ ! -x "$influxd" ]] && ! have influxd; then
	# The version variables make /ping report X-Influxdb-Version: 1.8.10 instead of "unknown".
	# Run from / with GOFLAGS cleared so that no project go.mod or flag is in scope.
	(cd / && GOFLAGS='' go install \
		-ldflags "-X main.version=${INFLUXDB_VERSION#v} -X main.branch=1.8 -X main.commit=${INFLUXDB_VERSION}" \
		"${INFLUXDB_MODULE}/cmd/influxd@${INFLUXDB_VERSION}") ||
		die "go install ${INFLUXDB_MODULE}/cmd/influxd@${INFLUXDB_VERSION} failed"
	echo "installed influxd ${INFLUXDB_VERSION} (go install) at $influxd"
fi
