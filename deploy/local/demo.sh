#!/usr/bin/env bash
# demo.sh: run parkcarbon end to end on its embedded defaults (SQLite, embedded MQTT broker)
# with a real InfluxDB 1.8 started next to it. Ctrl-C stops both.
#
# environment:
#   DEMO_DIR          where the demo keeps its data (default ./data/demo)
#   DEMO_INFLUX_PORT  InfluxDB port (default 8086)
#   PARKCARBON_*      any platform setting (see README), e.g. PARKCARBON_HTTP_ADDR
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${DEMO_DIR:-$root/data/demo}"
port="${DEMO_INFLUX_PORT:-8086}"

"$here/install.sh"
mkdir -p "$dir/bin"
echo "building parkcarbon ..."
(cd "$root" && go build -o "$dir/bin/parkcarbon" ./cmd/parkcarbon)

influx_url="$("$here/influxdb.sh" start "$dir/influxdb" "$port")"
trap '"$here/influxdb.sh" stop "$dir/influxdb" >/dev/null' EXIT
echo "InfluxDB 1.8.10 at $influx_url (bucket parkcarbon/autogen)"

export PARKCARBON_DATA_DIR="${PARKCARBON_DATA_DIR:-$dir/platform}"
export PARKCARBON_INFLUX_URL="$influx_url"
export PARKCARBON_INFLUX_BUCKET="${PARKCARBON_INFLUX_BUCKET:-parkcarbon/autogen}"
"$dir/bin/parkcarbon" demo
