package config

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		mutate  func(*Config)
		wantErr string // "" means valid
	}{
		{"defaults", func(*Config) {}, ""},

		{"http_addr port 0", func(c *Config) { c.HTTPAddr = "127.0.0.1:0" }, ""},
		{"http_addr all interfaces", func(c *Config) { c.HTTPAddr = ":8080" }, ""},
		{"http_addr IPv6", func(c *Config) { c.HTTPAddr = "[::1]:8080" }, ""},
		{"http_addr no port", func(c *Config) { c.HTTPAddr = "foo" },
			`http_addr (PARKCARBON_HTTP_ADDR): "foo" is not host:port`},
		{"http_addr named port", func(c *Config) { c.HTTPAddr = "localhost:http" },
			`http_addr (PARKCARBON_HTTP_ADDR): "localhost:http" is not host:port with a numeric port (port "http" is not a number from 0 to 65535)`},
		{"http_addr port too big", func(c *Config) { c.HTTPAddr = "127.0.0.1:65536" },
			`port "65536" is not a number from 0 to 65535`},
		{"http_addr empty", func(c *Config) { c.HTTPAddr = "" },
			"http_addr (PARKCARBON_HTTP_ADDR): empty; set a listen address host:port, e.g. 127.0.0.1:8080"},
		{"grpc_addr bad", func(c *Config) { c.GRPCAddr = "127.0.0.1" },
			`grpc_addr (PARKCARBON_GRPC_ADDR): "127.0.0.1" is not host:port`},
		{"grpc_addr empty", func(c *Config) { c.GRPCAddr = "" },
			"grpc_addr (PARKCARBON_GRPC_ADDR): empty"},
		{"two listeners on one address", func(c *Config) { c.GRPCAddr = c.HTTPAddr },
			"http_addr (PARKCARBON_HTTP_ADDR) and grpc_addr (PARKCARBON_GRPC_ADDR) both listen on 127.0.0.1:8080"},
		{"two listeners on port 0", func(c *Config) { c.HTTPAddr, c.GRPCAddr, c.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0" }, ""},

		{"mqtt_addr empty: no broker", func(c *Config) { c.MQTTAddr = "" }, ""},
		{"mqtt_addr bad", func(c *Config) { c.MQTTAddr = "1883" },
			`mqtt_addr (PARKCARBON_MQTT_ADDR): "1883" is not host:port`},
		{"mqtt_url and mqtt_addr", func(c *Config) { c.MQTTURL = "tcp://127.0.0.1:1883" },
			"set one of mqtt_addr (PARKCARBON_MQTT_ADDR) for the embedded broker or mqtt_url (PARKCARBON_MQTT_URL) for an external broker, not both"},
		{"mqtt_url tcp", external("tcp://127.0.0.1:1883"), ""},
		{"mqtt_url ssl", external("ssl://broker.example:8883"), ""},
		{"mqtt_url mqtt", external("mqtt://broker.example:1883"), ""},
		{"mqtt_url mqtts", external("mqtts://user:pw@broker.example:8883"), ""},
		{"mqtt_url ws without port", external("ws://broker.example/mqtt"), ""},
		{"mqtt_url wss", external("wss://broker.example:443/mqtt"), ""},
		{"mqtt_url http", external("http://broker.example:1883"),
			`mqtt_url (PARKCARBON_MQTT_URL): scheme "http" is not supported; want tcp://, ssl://, mqtt://, mqtts://, ws:// or wss://`},
		{"mqtt_url tcp without port", external("tcp://broker.example"),
			`mqtt_url (PARKCARBON_MQTT_URL): "tcp://broker.example" has no host:port`},
		{"mqtt_url bare host:port", external("broker.example:1883"),
			"mqtt_url (PARKCARBON_MQTT_URL): no scheme; want tcp://"},
		{"mqtt_url port too big", external("tcp://broker.example:70000"),
			`mqtt_url (PARKCARBON_MQTT_URL): port "70000" is not a number`},

		{"data_dir empty", func(c *Config) { c.DataDir = " " },
			"data_dir (PARKCARBON_DATA_DIR): empty; set a directory"},

		{"db_url postgres", func(c *Config) { c.DBURL = "postgres://pc:pw@db:5432/parkcarbon?sslmode=disable" }, ""},
		{"db_url postgresql", func(c *Config) { c.DBURL = "postgresql:///parkcarbon?host=/run/postgresql" }, ""},
		{"db_url POSTGRES upper case", func(c *Config) { c.DBURL = "POSTGRES://db/parkcarbon" }, ""},
		{"db_url mysql", func(c *Config) { c.DBURL = "mysql://root@db/parkcarbon" },
			`db_url (PARKCARBON_DB_URL): scheme "mysql" is not postgres:// or postgresql://; leave it empty to use SQLite in data_dir (PARKCARBON_DATA_DIR)`},
		{"db_url key=value DSN", func(c *Config) { c.DBURL = "host=db user=pc" },
			"db_url (PARKCARBON_DB_URL): not a URL; want postgres://user:password@host:5432/dbname, or leave it empty to use SQLite in data_dir (PARKCARBON_DATA_DIR)"},
		{"db_url not a URL", func(c *Config) { c.DBURL = "postgres://db:port/x" },
			"db_url (PARKCARBON_DB_URL): not a URL; want postgres://user:password@host:5432/dbname"},

		{"influx https without port", func(c *Config) { c.Influx.URL = "https://eu-central-1-1.aws.cloud2.influxdata.com" }, ""},
		{"influx url no scheme", func(c *Config) { c.Influx.URL = "127.0.0.1:8086" },
			"influx.url (PARKCARBON_INFLUX_URL): no scheme; want http(s)://host:port, e.g. http://127.0.0.1:8086"},
		{"influx url wrong scheme", func(c *Config) { c.Influx.URL = "udp://127.0.0.1:8089" },
			`influx.url (PARKCARBON_INFLUX_URL): "udp://127.0.0.1:8089" is not http(s)://host:port; want http(s)://host:port, e.g. http://127.0.0.1:8086`},
		{"influx url no host", func(c *Config) { c.Influx.URL = "http://:8086" },
			`influx.url (PARKCARBON_INFLUX_URL): "http://:8086" has no host`},
		{"influx url empty", func(c *Config) { c.Influx.URL = "" },
			"influx.url (PARKCARBON_INFLUX_URL): empty"},
		{"influx bucket empty", func(c *Config) { c.Influx.Bucket = "" },
			"influx.bucket (PARKCARBON_INFLUX_BUCKET): empty; set the bucket"},

		{"admin_token 32", func(c *Config) { c.AdminToken = strings.Repeat("x", 32) }, ""},
		{"admin_token 31", func(c *Config) { c.AdminToken = strings.Repeat("x", 31) },
			"admin_token (PARKCARBON_ADMIN_TOKEN): 31 characters is too weak for the bootstrap admin token; use at least 32, e.g. from `openssl rand -base64 32`"},

		{"timezone UTC", func(c *Config) { c.Timezone = "UTC" }, ""},
		{"timezone Europe/Berlin", func(c *Config) { c.Timezone = "Europe/Berlin" }, ""},
		{"timezone unknown", func(c *Config) { c.Timezone = "Asia/Beijing" },
			`timezone (PARKCARBON_TIMEZONE): "Asia/Beijing" is not an IANA time zone, e.g. Asia/Shanghai`},
		{"timezone empty", func(c *Config) { c.Timezone = "" },
			"timezone (PARKCARBON_TIMEZONE): empty"},
		{"timezone Local", func(c *Config) { c.Timezone = "Local" },
			`timezone (PARKCARBON_TIMEZONE): "Local" depends on the host`},

		{"roles subset", func(c *Config) { c.Roles = []string{"api", "accounting"} }, ""},
		{"roles empty", func(c *Config) { c.Roles = nil },
			"roles (PARKCARBON_ROLES): empty; list one or more of collector, api, accounting, alerting"},
		{"roles unknown", func(c *Config) { c.Roles = []string{"api", "Collector"} },
			`roles (PARKCARBON_ROLES): unknown role "Collector"; known roles: collector, api, accounting, alerting`},
		{"roles broker", func(c *Config) { c.Roles = []string{"broker"} },
			"the embedded broker is not a role: it follows mqtt_addr (PARKCARBON_MQTT_ADDR) and mqtt_url (PARKCARBON_MQTT_URL)"},

		{"log level debug", func(c *Config) { c.Log.Level = "debug" }, ""},
		{"log level unknown", func(c *Config) { c.Log.Level = "trace" },
			`log.level (PARKCARBON_LOG_LEVEL): "trace" is not one of debug, info, warn, error`},
		{"log format json", func(c *Config) { c.Log.Format = "json" }, ""},
		{"log format unknown", func(c *Config) { c.Log.Format = "logfmt" },
			`log.format (PARKCARBON_LOG_FORMAT): "logfmt" is not one of text, json`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.mutate(&c)
			checkErr(t, c.Validate(), tc.wantErr)
		})
	}
}

// external switches to an external broker at u.
func external(u string) func(*Config) {
	return func(c *Config) { c.MQTTAddr, c.MQTTURL = "", u }
}

func TestValidateCollectsAllProblems(t *testing.T) {
	c := Default()
	c.HTTPAddr = "foo"
	c.Influx.Bucket = ""
	c.Timezone = "Mars/Olympus_Mons"
	c.Roles = []string{"broker", "broker", "x"}
	c.Log.Format = "xml"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %T is not a joined error", err)
	}
	// One per problem; a repeated unknown role is reported once.
	if n := len(joined.Unwrap()); n != 6 {
		t.Errorf("%d errors, want 6:\n%v", n, err)
	}
	for _, key := range []string{"http_addr", "influx.bucket", "timezone", `"broker"`, `"x"`, "log.format"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error does not mention %s:\n%v", key, err)
		}
	}
}

func TestValidateHidesSecrets(t *testing.T) {
	c := Default()
	c.AdminToken = "weak-admin-secret"
	c.DBURL = "mysql://root:db-secret@db/parkcarbon"
	c.MQTTAddr = ""
	c.MQTTURL = "http://collector:mqtt-secret@broker:1883"
	c.Influx.URL = "ftp://user:influx-secret@influx:8086"
	err := c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, secret := range []string{"weak-admin-secret", "db-secret", "mqtt-secret", "influx-secret"} {
		if strings.Contains(err.Error(), secret) {
			t.Errorf("error shows %q:\n%v", secret, err)
		}
	}
	// An unparseable URL is not echoed at all.
	c = Default()
	c.DBURL = "postgres://pc:pw-secret@db:notaport/x"
	if err := c.Validate(); err == nil || strings.Contains(err.Error(), "pw-secret") {
		t.Errorf("error %v shows the password or is missing", err)
	}
}
