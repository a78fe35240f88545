package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// MinAdminTokenLen is the shortest bootstrap admin token Validate accepts.
const MinAdminTokenLen = 32

// Validate checks every setting and returns all problems joined
// (errors.Join), each naming the setting by its YAML key and environment
// variable and saying what would be accepted. Secrets are never echoed.
func (c Config) Validate() error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", label(key), fmt.Sprintf(format, args...)))
	}

	listen := []struct{ key, addr string }{
		{"http_addr", c.HTTPAddr},
		{"grpc_addr", c.GRPCAddr},
		{"mqtt_addr", c.MQTTAddr},
	}
	seen := map[string]string{} // address → key, to catch two listeners on one port
	for _, l := range listen {
		if l.addr == "" {
			if l.key != "mqtt_addr" { // empty mqtt_addr: no embedded broker
				bad(l.key, "empty; set a listen address host:port, e.g. %s", defaultOf(l.key))
			}
			continue
		}
		if msg := checkHostPort(l.addr); msg != "" {
			bad(l.key, "%q is not host:port with a numeric port (%s), e.g. %s", l.addr, msg, defaultOf(l.key))
			continue
		}
		if _, port, _ := net.SplitHostPort(l.addr); port == "0" {
			continue // any free port: never a clash
		}
		if other, ok := seen[l.addr]; ok {
			errs = append(errs, fmt.Errorf("%s and %s both listen on %s; give them different ports", label(other), label(l.key), l.addr))
			continue
		}
		seen[l.addr] = l.key
	}

	if c.MQTTAddr != "" && c.MQTTURL != "" {
		errs = append(errs, fmt.Errorf("set one of %s for the embedded broker or %s for an external broker, not both; set %s to empty to use the external broker",
			label("mqtt_addr"), label("mqtt_url"), label("mqtt_addr")))
	}
	if c.MQTTURL != "" {
		if msg := checkMQTTURL(c.MQTTURL); msg != "" {
			bad("mqtt_url", "%s", msg)
		}
	}

	if strings.TrimSpace(c.DataDir) == "" {
		bad("data_dir", "empty; set a directory for the SQLite file, broker state and keys, e.g. %s", defaultOf("data_dir"))
	}

	if c.DBURL != "" {
		// The URL may carry a password: name only its scheme.
		u, err := url.Parse(c.DBURL)
		switch {
		case err != nil || !strings.Contains(c.DBURL, "://"):
			bad("db_url", "not a URL; want postgres://user:password@host:5432/dbname, or leave it empty to use SQLite in %s", label("data_dir"))
		case u.Scheme != "postgres" && u.Scheme != "postgresql":
			bad("db_url", "scheme %q is not postgres:// or postgresql://; leave it empty to use SQLite in %s", u.Scheme, label("data_dir"))
		}
	}

	if msg := checkInfluxURL(c.Influx.URL); msg != "" {
		bad("influx.url", "%s", msg)
	}
	if strings.TrimSpace(c.Influx.Bucket) == "" {
		bad("influx.bucket", "empty; set the bucket (database/retention-policy on InfluxDB 1.8), e.g. %s", defaultOf("influx.bucket"))
	}

	if n := utf8.RuneCountInString(c.AdminToken); c.AdminToken != "" && n < MinAdminTokenLen {
		bad("admin_token", "%d characters is too weak for the bootstrap admin token; use at least %d, e.g. from `openssl rand -base64 32`", n, MinAdminTokenLen)
	}

	switch c.Timezone {
	case "":
		bad("timezone", "empty; set an IANA time zone, e.g. %s", defaultOf("timezone"))
	case "Local":
		bad("timezone", `"Local" depends on the host; set an IANA time zone, e.g. %s`, defaultOf("timezone"))
	default:
		if _, err := time.LoadLocation(c.Timezone); err != nil {
			bad("timezone", "%q is not an IANA time zone, e.g. %s", c.Timezone, defaultOf("timezone"))
		}
	}

	known := KnownRoles()
	if len(c.Roles) == 0 {
		bad("roles", "empty; list one or more of %s", strings.Join(known, ", "))
	}
	var reported []string
	for _, r := range c.Roles {
		if slices.Contains(known, r) || slices.Contains(reported, r) {
			continue
		}
		reported = append(reported, r)
		hint := ""
		if r == "broker" {
			hint = fmt.Sprintf(" (the embedded broker is not a role: it follows %s and %s)", label("mqtt_addr"), label("mqtt_url"))
		}
		bad("roles", "unknown role %q; known roles: %s%s", r, strings.Join(known, ", "), hint)
	}

	for _, iv := range []struct{ key, v string }{{"rollup_interval", c.RollupInterval}, {"alert_interval", c.AlertInterval}} {
		if d, err := time.ParseDuration(iv.v); err != nil || d < 100*time.Millisecond || d > time.Hour {
			bad(iv.key, "%q is not a duration from 100ms to 1h, like 5s or 30s", iv.v)
		}
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	if !slices.Contains([]string{"text", "json"}, c.Log.Format) {
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}

	return errors.Join(errs...)
}

// checkHostPort returns what is wrong with a listen address, or "".
func checkHostPort(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			return ae.Err
		}
		return err.Error()
	}
	if port == "" || !portOK(port) {
		return fmt.Sprintf("port %q is not a number from 0 to 65535", port)
	}
	return ""
}

// checkMQTTURL returns what is wrong with an external broker URL, or "". The
// URL may carry credentials, so only its redacted form is echoed.
func checkMQTTURL(s string) string {
	const want = "want tcp://, ssl://, mqtt://, mqtts://, ws:// or wss:// with host:port, e.g. tcp://127.0.0.1:1883"
	if !strings.Contains(s, "://") {
		return "no scheme; " + want
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL; " + want
	}
	switch u.Scheme {
	case "tcp", "ssl", "mqtt", "mqtts":
		if u.Hostname() == "" || u.Port() == "" {
			return fmt.Sprintf("%q has no host:port; %s", u.Redacted(), want)
		}
	case "ws", "wss": // the port defaults to 80 or 443
		if u.Hostname() == "" {
			return fmt.Sprintf("%q has no host; %s", u.Redacted(), want)
		}
	default:
		return fmt.Sprintf("scheme %q is not supported; %s", u.Scheme, want)
	}
	if !portOK(u.Port()) {
		return fmt.Sprintf("port %q is not a number from 0 to 65535; %s", u.Port(), want)
	}
	return ""
}

// checkInfluxURL returns what is wrong with the InfluxDB URL, or "". The port
// may be omitted (InfluxDB Cloud serves https on 443).
func checkInfluxURL(s string) string {
	const want = "want http(s)://host:port, e.g. http://127.0.0.1:8086"
	if s == "" {
		return "empty; " + want
	}
	if !strings.Contains(s, "://") {
		return "no scheme; " + want
	}
	u, err := url.Parse(s)
	if err != nil {
		return "not a URL; " + want
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("%q is not http(s)://host:port; %s", u.Redacted(), want)
	}
	if u.Hostname() == "" {
		return fmt.Sprintf("%q has no host; %s", u.Redacted(), want)
	}
	if !portOK(u.Port()) {
		return fmt.Sprintf("port %q is not a number from 0 to 65535; %s", u.Port(), want)
	}
	return ""
}

// portOK reports whether port is empty or a number from 0 to 65535.
func portOK(port string) bool {
	if port == "" {
		return true
	}
	_, err := strconv.ParseUint(port, 10, 16)
	return err == nil
}

// defaultOf returns the documented default of the setting with YAML key key.
func defaultOf(key string) string {
	for _, s := range settings() {
		if s.YAMLKey == key {
			return s.Default
		}
	}
	return ""
}
