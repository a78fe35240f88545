// Package config is parkcarbon's configuration: typed settings, defaults,
// YAML file, environment and flags, and validation.
//
// Precedence, highest first (DESIGN.md §3): flags, the YAML file given with
// --config, environment variables (PARKCARBON_*), defaults. Load builds a
// Config through those layers and validates it; Vars lists the environment
// variables and is the single source of their names, YAML keys and defaults.
package config

import (
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"time"

	// Embed the IANA time zone database so that Asia/Shanghai (the default
	// park time zone) loads on hosts and images without /usr/share/zoneinfo.
	_ "time/tzdata"
)

// Roles a parkcarbon process can run (PARKCARBON_ROLES, --roles). The
// embedded MQTT broker is not a role: it runs when MQTTAddr is set and
// MQTTURL is not.
const (
	RoleCollector  = "collector"
	RoleAPI        = "api"
	RoleAccounting = "accounting"
	RoleAlerting   = "alerting"
)

// KnownRoles returns the roles a process can run, in documentation order.
func KnownRoles() []string {
	return []string{RoleCollector, RoleAPI, RoleAccounting, RoleAlerting}
}

// SQLiteFileName is the name of the embedded SQLite database inside DataDir.
const SQLiteFileName = "parkcarbon.db"

// Config is the whole configuration of a parkcarbon process. Build it with
// Load (or Default for tests) and check it with Validate.
type Config struct {
	// HTTPAddr is the REST + dashboard listen address (host:port).
	HTTPAddr string `yaml:"http_addr"`
	// GRPCAddr is the gRPC listen address (host:port).
	GRPCAddr string `yaml:"grpc_addr"`
	// MQTTAddr is the embedded broker's listen address; empty: no embedded
	// broker.
	MQTTAddr string `yaml:"mqtt_addr"`
	// MQTTURL is an external broker (tcp://, ssl://, mqtt://, mqtts://,
	// ws:// or wss://); set: no embedded broker.
	MQTTURL string `yaml:"mqtt_url"`
	// MQTTServicePassword is the password the collector uses at an external
	// broker. With the embedded broker an empty value means: generated and
	// kept in DataDir.
	MQTTServicePassword string `yaml:"mqtt_service_password"`
	// DataDir holds the SQLite file, embedded-broker persistence and signing
	// keys.
	DataDir string `yaml:"data_dir"`
	// DBURL is a postgres:// or postgresql:// URL; empty: SQLite at
	// SQLiteFile().
	DBURL string `yaml:"db_url"`
	// Influx is the InfluxDB v2 API connection.
	Influx Influx `yaml:"influx"`
	// AdminToken is the bootstrap admin bearer token, created on first start
	// if set.
	AdminToken string `yaml:"admin_token"`
	// Timezone is the default park time zone (IANA name).
	Timezone string `yaml:"timezone"`
	// Roles are the parts this process runs; see KnownRoles.
	Roles []string `yaml:"roles"`
	// RollupInterval and AlertInterval are Go durations: how often the accounting role rolls
	// up dirty hours and the alerting role evaluates its rules.
	RollupInterval string `yaml:"rollup_interval"`
	AlertInterval  string `yaml:"alert_interval"`
	// Log configures the process logger.
	Log Log `yaml:"log"`
}

// Influx is the InfluxDB v2 API connection.
type Influx struct {
	URL    string `yaml:"url"`
	Token  string `yaml:"token"`
	Org    string `yaml:"org"`
	Bucket string `yaml:"bucket"`
}

// Log configures the process logger.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// Default returns the configuration with every setting at its documented
// default (see Vars).
func Default() Config {
	var c Config
	for _, s := range settings() {
		s.set(&c, s.Default)
	}
	return c
}

// Load builds the configuration: defaults, then the environment (looked up
// with getenv; nil means os.LookupEnv), then the YAML file at path if path is
// non-empty (a missing file is an error), then apply (the command-line flags)
// if non-nil. It returns the result of Validate as its error.
//
// A variable that is set but empty counts as set: PARKCARBON_MQTT_ADDR=""
// disables the embedded broker. So does a YAML key with an empty or null
// value.
//
// MQTTAddr has a default, so setting only MQTTURL (in any layer) switches the
// embedded broker off rather than being reported as a conflict; setting both
// explicitly is an error.
//
// On a file error Load returns the zero Config. On a validation error it
// returns the configuration as built, so a caller can show it.
func Load(path string, getenv func(string) (string, bool), apply func(*Config)) (Config, error) {
	if getenv == nil {
		getenv = os.LookupEnv
	}
	c := Default()
	mqttAddrSet := applyEnv(&c, getenv)

	if path != "" {
		data, err := os.ReadFile(path) //nolint:gosec // G304: reading the operator's --config file is the point
		if err != nil {
			return Config{}, fmt.Errorf("read config file: %w", err)
		}
		set, err := decodeYAML(&c, data, "config file "+path)
		if err != nil {
			return Config{}, err
		}
		mqttAddrSet = mqttAddrSet || set
	}

	if apply != nil {
		before := c.MQTTAddr
		apply(&c)
		mqttAddrSet = mqttAddrSet || c.MQTTAddr != before
	}

	if !mqttAddrSet && c.MQTTURL != "" {
		c.MQTTAddr = ""
	}
	return c, c.Validate()
}

// Every returns a validated interval setting (RollupInterval, AlertInterval) as a duration.
func Every(v string) time.Duration {
	d, _ := time.ParseDuration(v)
	return d
}

// HasRole reports whether the process runs role r.
func (c Config) HasRole(r string) bool {
	return slices.Contains(c.Roles, r)
}

// EmbeddedBroker reports whether the process runs the embedded MQTT broker:
// MQTTAddr is set and no external broker URL is.
func (c Config) EmbeddedBroker() bool {
	return c.MQTTAddr != "" && c.MQTTURL == ""
}

// SQLiteFile returns DataDir/parkcarbon.db when DBURL is empty (SQLite is in
// use) and "" otherwise.
func (c Config) SQLiteFile() string {
	if c.DBURL != "" {
		return ""
	}
	return filepath.Join(c.DataDir, SQLiteFileName)
}

// Location returns the default park time zone. Call it after Validate: an
// invalid Timezone yields UTC. It loads the zone on every call, so keep the
// result.
func (c Config) Location() *time.Location {
	loc, err := time.LoadLocation(c.Timezone)
	if err != nil {
		return time.UTC
	}
	return loc
}

// SlogLevel returns Level as a slog.Level (info when Level is not valid).
func (l Log) SlogLevel() slog.Level {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.Level)); err != nil {
		return slog.LevelInfo
	}
	return lv
}

// Redacted returns a copy safe to print or log: tokens and passwords are
// replaced and passwords inside URLs masked.
func (c Config) Redacted() Config {
	const mask = "[redacted]"
	hide := func(s string) string {
		if s == "" {
			return ""
		}
		return mask
	}
	hideURL := func(s string) string {
		if s == "" {
			return ""
		}
		u, err := url.Parse(s)
		if err != nil {
			return mask
		}
		return u.Redacted()
	}
	r := c
	r.Roles = slices.Clone(c.Roles)
	r.AdminToken = hide(c.AdminToken)
	r.MQTTServicePassword = hide(c.MQTTServicePassword)
	r.Influx.Token = hide(c.Influx.Token)
	r.DBURL = hideURL(c.DBURL)
	r.MQTTURL = hideURL(c.MQTTURL)
	r.Influx.URL = hideURL(c.Influx.URL)
	return r
}
