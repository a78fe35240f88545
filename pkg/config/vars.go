package config

import "strings"

// Var documents one environment variable: its name, the YAML key of the same
// setting (dotted for nested keys), its default and what it means.
type Var struct {
	Name    string
	YAMLKey string
	Default string
	Meaning string
}

// setting is a Var with the way to store a value into a Config. The table in
// settings is the single source of names, keys and defaults: Default, the
// environment layer, Validate's messages and Vars all read it.
type setting struct {
	Var
	set func(c *Config, v string)
}

// Vars returns the documented environment variables with their defaults and
// meaning, in documentation order, for the README table and `parkcarbon
// config` help.
func Vars() []Var {
	ss := settings()
	vs := make([]Var, len(ss))
	for i, s := range ss {
		vs[i] = s.Var
	}
	return vs
}

func settings() []setting {
	str := func(field func(*Config) *string) func(*Config, string) {
		return func(c *Config, v string) { *field(c) = v }
	}
	return []setting{
		{Var{"PARKCARBON_HTTP_ADDR", "http_addr", "127.0.0.1:8080",
			"REST + dashboard listen address (host:port)"},
			str(func(c *Config) *string { return &c.HTTPAddr })},
		{Var{"PARKCARBON_GRPC_ADDR", "grpc_addr", "127.0.0.1:9090",
			"gRPC listen address (host:port)"},
			str(func(c *Config) *string { return &c.GRPCAddr })},
		{Var{"PARKCARBON_MQTT_ADDR", "mqtt_addr", "127.0.0.1:1883",
			"embedded broker listen address (empty: no embedded broker)"},
			str(func(c *Config) *string { return &c.MQTTAddr })},
		{Var{"PARKCARBON_MQTT_URL", "mqtt_url", "",
			"external broker, e.g. tcp://127.0.0.1:1883 (tcp, ssl, mqtt, mqtts, ws, wss); set: no embedded broker"},
			str(func(c *Config) *string { return &c.MQTTURL })},
		{Var{"PARKCARBON_MQTT_SERVICE_PASSWORD", "mqtt_service_password", "",
			"password the collector uses at an external broker; empty with the embedded broker: generated and kept in the data directory"},
			str(func(c *Config) *string { return &c.MQTTServicePassword })},
		{Var{"PARKCARBON_DATA_DIR", "data_dir", "./data",
			"SQLite file, embedded-broker persistence, signing keys"},
			str(func(c *Config) *string { return &c.DataDir })},
		{Var{"PARKCARBON_DB_URL", "db_url", "",
			"postgres://… to use PostgreSQL instead of SQLite"},
			str(func(c *Config) *string { return &c.DBURL })},
		{Var{"PARKCARBON_INFLUX_URL", "influx.url", "http://127.0.0.1:8086",
			"InfluxDB v2 API URL"},
			str(func(c *Config) *string { return &c.Influx.URL })},
		{Var{"PARKCARBON_INFLUX_TOKEN", "influx.token", "",
			"InfluxDB API token"},
			str(func(c *Config) *string { return &c.Influx.Token })},
		{Var{"PARKCARBON_INFLUX_ORG", "influx.org", "",
			"InfluxDB organization"},
			str(func(c *Config) *string { return &c.Influx.Org })},
		{Var{"PARKCARBON_INFLUX_BUCKET", "influx.bucket", "parkcarbon",
			"InfluxDB bucket (database/retention-policy on InfluxDB 1.8)"},
			str(func(c *Config) *string { return &c.Influx.Bucket })},
		{Var{"PARKCARBON_ADMIN_TOKEN", "admin_token", "",
			"bootstrap admin bearer token (created on first start if set; at least 32 characters)"},
			str(func(c *Config) *string { return &c.AdminToken })},
		{Var{"PARKCARBON_TIMEZONE", "timezone", "Asia/Shanghai",
			"default park time zone"},
			str(func(c *Config) *string { return &c.Timezone })},
		{Var{"PARKCARBON_ROLES", "roles", strings.Join(KnownRoles(), ","),
			"roles this process runs, comma separated: " + strings.Join(KnownRoles(), ", ")},
			func(c *Config, v string) { c.Roles = splitList(v) }},
		{Var{"PARKCARBON_ROLLUP_INTERVAL", "rollup_interval", "5s",
			"accounting role: how often hours marked by the collectors are rolled up (Go duration)"},
			str(func(c *Config) *string { return &c.RollupInterval })},
		{Var{"PARKCARBON_ALERT_INTERVAL", "alert_interval", "30s",
			"alerting role: how often the rules are evaluated (Go duration)"},
			str(func(c *Config) *string { return &c.AlertInterval })},
		{Var{"PARKCARBON_LOG_LEVEL", "log.level", "info",
			"log level: debug, info, warn, error"},
			str(func(c *Config) *string { return &c.Log.Level })},
		{Var{"PARKCARBON_LOG_FORMAT", "log.format", "text",
			"log format: text, json"},
			str(func(c *Config) *string { return &c.Log.Format })},
	}
}

// applyEnv sets every variable getenv reports as set, even to "", and
// reports whether PARKCARBON_MQTT_ADDR was among them.
func applyEnv(c *Config, getenv func(string) (string, bool)) (mqttAddrSet bool) {
	for _, s := range settings() {
		v, ok := getenv(s.Name)
		if !ok {
			continue
		}
		s.set(c, v)
		if s.YAMLKey == "mqtt_addr" {
			mqttAddrSet = true
		}
	}
	return mqttAddrSet
}

// splitList splits a comma-separated list, trimming spaces and dropping
// empty items.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// label names a setting for a person: its YAML key and its environment
// variable, e.g. "http_addr (PARKCARBON_HTTP_ADDR)".
func label(key string) string {
	for _, s := range settings() {
		if s.YAMLKey == key {
			return key + " (" + s.Name + ")"
		}
	}
	return key
}
