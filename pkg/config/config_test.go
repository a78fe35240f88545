package config

import (
	"errors"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// env returns a getenv over m.
func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

// writeFile writes a YAML file into a fresh temporary directory.
func writeFile(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parkcarbon.yaml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// valueAt returns the setting at the dotted YAML key of c, as YAML renders
// it (lists joined with commas).
func valueAt(t *testing.T, c Config, key string) string {
	t.Helper()
	b, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := yaml.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var v any = m
	for part := range strings.SplitSeq(key, ".") {
		mm, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("key %s: %v is not a mapping", key, v)
		}
		if v, ok = mm[part]; !ok {
			t.Fatalf("key %s: no %q in %v", key, part, mm)
		}
	}
	switch v := v.(type) {
	case []any:
		s := make([]string, len(v))
		for i, x := range v {
			s[i] = x.(string)
		}
		return strings.Join(s, ",")
	case nil:
		return ""
	default:
		return v.(string)
	}
}

func TestVarsCoverDesign(t *testing.T) {
	// The contract of DESIGN.md §3: names and defaults.
	designVars := map[string]string{
		"PARKCARBON_HTTP_ADDR":     "127.0.0.1:8080",
		"PARKCARBON_GRPC_ADDR":     "127.0.0.1:9090",
		"PARKCARBON_MQTT_ADDR":     "127.0.0.1:1883",
		"PARKCARBON_MQTT_URL":      "",
		"PARKCARBON_DATA_DIR":      "./data",
		"PARKCARBON_DB_URL":        "",
		"PARKCARBON_INFLUX_URL":    "http://127.0.0.1:8086",
		"PARKCARBON_INFLUX_TOKEN":  "",
		"PARKCARBON_INFLUX_ORG":    "",
		"PARKCARBON_INFLUX_BUCKET": "parkcarbon",
		"PARKCARBON_ADMIN_TOKEN":   "",
		"PARKCARBON_TIMEZONE":      "Asia/Shanghai",
	}
	vars := Vars()
	byName := map[string]Var{}
	for _, v := range vars {
		if _, dup := byName[v.Name]; dup {
			t.Errorf("%s listed twice", v.Name)
		}
		byName[v.Name] = v
	}
	for name, def := range designVars {
		t.Run(name, func(t *testing.T) {
			v, ok := byName[name]
			if !ok {
				t.Fatalf("Vars() lacks %s", name)
			}
			if v.Default != def {
				t.Errorf("default %q, DESIGN.md §3 says %q", v.Default, def)
			}
		})
	}
	for _, v := range vars {
		t.Run("documented/"+v.Name, func(t *testing.T) {
			if !strings.HasPrefix(v.Name, "PARKCARBON_") || v.YAMLKey == "" || v.Meaning == "" {
				t.Errorf("incomplete: %+v", v)
			}
			if got := valueAt(t, Default(), v.YAMLKey); got != v.Default {
				t.Errorf("Default() has %s = %q, Vars() documents %q", v.YAMLKey, got, v.Default)
			}
			// The variable sets the setting at its YAML key.
			c, _ := Load("", env(map[string]string{v.Name: "sentinel"}), nil)
			if got := valueAt(t, c, v.YAMLKey); got != "sentinel" {
				t.Errorf("%s=sentinel gives %s = %q", v.Name, v.YAMLKey, got)
			}
		})
	}
	// Every YAML key is reachable from the environment.
	keys := yamlKeys(reflect.TypeFor[Config](), "")
	for _, k := range keys {
		if !slices.ContainsFunc(vars, func(v Var) bool { return v.YAMLKey == k }) {
			t.Errorf("YAML key %s has no environment variable in Vars()", k)
		}
	}
	if len(keys) != len(vars) {
		t.Errorf("%d YAML keys, %d variables", len(keys), len(vars))
	}
}

func yamlKeys(t reflect.Type, prefix string) []string {
	var keys []string
	for i := range t.NumField() {
		f := t.Field(i)
		k := prefix + yamlKey(f)
		if f.Type.Kind() == reflect.Struct {
			keys = append(keys, yamlKeys(f.Type, k+".")...)
			continue
		}
		keys = append(keys, k)
	}
	return keys
}

func TestDefault(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	want := Config{
		HTTPAddr: "127.0.0.1:8080",
		GRPCAddr: "127.0.0.1:9090",
		MQTTAddr: "127.0.0.1:1883",
		DataDir:  "./data",
		Influx:   Influx{URL: "http://127.0.0.1:8086", Bucket: "parkcarbon"},
		Timezone: "Asia/Shanghai",
		Roles:    []string{"collector", "api", "accounting", "alerting"},
		Log:      Log{Level: "info", Format: "text"},

		RollupInterval: "5s", AlertInterval: "30s",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default() = %+v\nwant %+v", c, want)
	}
	if !c.EmbeddedBroker() {
		t.Error("default runs no embedded broker")
	}
	for _, r := range KnownRoles() {
		if !c.HasRole(r) {
			t.Errorf("default lacks role %s", r)
		}
	}
}

func TestLoadNoSources(t *testing.T) {
	c, err := Load("", env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(c, Default()) {
		t.Errorf("Load with nothing = %+v, want Default()", c)
	}
}

func TestLoadNilGetenvReadsProcessEnvironment(t *testing.T) {
	t.Setenv("PARKCARBON_HTTP_ADDR", "127.0.0.1:18080")
	c, err := Load("", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTPAddr != "127.0.0.1:18080" {
		t.Errorf("HTTPAddr = %q", c.HTTPAddr)
	}
}

// TestPrecedence sets every setting in each layer and checks that each
// layer overrides the one below it: flags > file > environment > defaults.
func TestPrecedence(t *testing.T) {
	for _, s := range settings() {
		t.Run(s.YAMLKey, func(t *testing.T) {
			envs := map[string]string{s.Name: "from-env"}
			file := fileSetting(t, s.YAMLKey, "from-file")
			flags := func(c *Config) { s.set(c, "from-flag") }
			cases := []struct {
				name  string
				path  string
				apply func(*Config)
				env   map[string]string
				want  string
			}{
				{"default", "", nil, nil, s.Default},
				{"env over default", "", nil, envs, "from-env"},
				{"file over env", file, nil, envs, "from-file"},
				{"flag over file", file, flags, envs, "from-flag"},
				{"flag over env", "", flags, envs, "from-flag"},
			}
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					c, err := Load(tc.path, env(tc.env), tc.apply)
					if err != nil && !isValidation(err) {
						t.Fatal(err)
					}
					if got := valueAt(t, c, s.YAMLKey); got != tc.want {
						t.Errorf("%s = %q, want %q", s.YAMLKey, got, tc.want)
					}
				})
			}
		})
	}
}

// fileSetting writes a YAML file setting only the dotted key to v.
func fileSetting(t *testing.T, key, v string) string {
	t.Helper()
	var val any = v
	if key == "roles" {
		val = []string{v}
	}
	parts := strings.Split(key, ".")
	for i := len(parts) - 1; i >= 0; i-- {
		val = map[string]any{parts[i]: val}
	}
	b, err := yaml.Marshal(val)
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, string(b))
}

// isValidation reports whether err comes from Validate rather than from
// reading the file: its messages name settings by environment variable.
func isValidation(err error) bool {
	return strings.Contains(err.Error(), "(PARKCARBON_")
}

// TestPrecedenceFieldByField checks that a layer overrides only the
// settings it sets, including inside nested sections.
func TestPrecedenceFieldByField(t *testing.T) {
	path := writeFile(t, `
grpc_addr: 127.0.0.2:9090
data_dir: /from/file
influx:
  bucket: file-bucket
log:
  format: json
`)
	getenv := env(map[string]string{
		"PARKCARBON_HTTP_ADDR":     "127.0.0.1:1111",
		"PARKCARBON_GRPC_ADDR":     "127.0.0.1:2222",
		"PARKCARBON_DATA_DIR":      "/from/env",
		"PARKCARBON_INFLUX_URL":    "http://influx.env:8086",
		"PARKCARBON_INFLUX_BUCKET": "env-bucket",
		"PARKCARBON_LOG_LEVEL":     "debug",
	})
	c, err := Load(path, getenv, func(c *Config) { c.DataDir = "/from/flag" })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ key, got, want string }{
		{"http_addr", c.HTTPAddr, "127.0.0.1:1111"},
		{"grpc_addr", c.GRPCAddr, "127.0.0.2:9090"},
		{"data_dir", c.DataDir, "/from/flag"},
		{"influx.url", c.Influx.URL, "http://influx.env:8086"},
		{"influx.bucket", c.Influx.Bucket, "file-bucket"},
		{"log.level", c.Log.Level, "debug"},
		{"log.format", c.Log.Format, "json"},
		{"timezone", c.Timezone, "Asia/Shanghai"},
		{"mqtt_addr", c.MQTTAddr, "127.0.0.1:1883"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%s = %q, want %q", tc.key, tc.got, tc.want)
			}
		})
	}
}

func TestRolesFromEnvironment(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want []string
	}{
		{"collector", []string{"collector"}},
		{"api, accounting ,alerting", []string{"api", "accounting", "alerting"}},
		{"api,,collector,", []string{"api", "collector"}},
		{"", nil},
	} {
		t.Run(tc.env, func(t *testing.T) {
			c, _ := Load("", env(map[string]string{"PARKCARBON_ROLES": tc.env}), nil)
			if !slices.Equal(c.Roles, tc.want) {
				t.Errorf("Roles = %q, want %q", c.Roles, tc.want)
			}
		})
	}
}

func TestEmbeddedBroker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		env      map[string]string
		file     string
		apply    func(*Config)
		wantAddr string
		wantURL  string
		wantErr  string
	}{
		{name: "default: embedded", wantAddr: "127.0.0.1:1883"},
		{name: "env set to empty disables it",
			env: map[string]string{"PARKCARBON_MQTT_ADDR": ""}},
		{name: "file empty string disables it", file: "mqtt_addr: \"\"\n"},
		{name: "file null disables it", file: "mqtt_addr:\n"},
		{name: "file tilde disables it", file: "mqtt_addr: ~\n"},
		{name: "flag empty disables it", apply: func(c *Config) { c.MQTTAddr = "" }},
		{name: "env URL alone switches it off",
			env:     map[string]string{"PARKCARBON_MQTT_URL": "tcp://127.0.0.1:1883"},
			wantURL: "tcp://127.0.0.1:1883"},
		{name: "file URL alone switches it off",
			file:    "mqtt_url: mqtts://broker.example:8883\n",
			wantURL: "mqtts://broker.example:8883"},
		{name: "flag URL alone switches it off",
			apply:   func(c *Config) { c.MQTTURL = "ws://broker.example/mqtt" },
			wantURL: "ws://broker.example/mqtt"},
		{name: "both explicit is an error",
			env: map[string]string{
				"PARKCARBON_MQTT_ADDR": "0.0.0.0:1883",
				"PARKCARBON_MQTT_URL":  "tcp://127.0.0.1:1883",
			},
			wantAddr: "0.0.0.0:1883", wantURL: "tcp://127.0.0.1:1883",
			wantErr: "set one of mqtt_addr (PARKCARBON_MQTT_ADDR) for the embedded broker or mqtt_url (PARKCARBON_MQTT_URL)"},
		{name: "explicit in different layers is an error",
			env:      map[string]string{"PARKCARBON_MQTT_ADDR": "0.0.0.0:1883"},
			file:     "mqtt_url: tcp://127.0.0.1:1883\n",
			wantAddr: "0.0.0.0:1883", wantURL: "tcp://127.0.0.1:1883",
			wantErr: "not both"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := ""
			if tc.file != "" {
				path = writeFile(t, tc.file)
			}
			c, err := Load(path, env(tc.env), tc.apply)
			checkErr(t, err, tc.wantErr)
			if c.MQTTAddr != tc.wantAddr || c.MQTTURL != tc.wantURL {
				t.Errorf("MQTTAddr, MQTTURL = %q, %q; want %q, %q", c.MQTTAddr, c.MQTTURL, tc.wantAddr, tc.wantURL)
			}
			if tc.wantErr == "" && c.EmbeddedBroker() != (tc.wantAddr != "") {
				t.Errorf("EmbeddedBroker() = %v", c.EmbeddedBroker())
			}
		})
	}
}

// checkErr fails unless err contains want, or is nil when want is "".
func checkErr(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case want != "" && err == nil:
		t.Fatalf("no error, want one containing %q", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Fatalf("error %q\ndoes not contain %q", err, want)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	c, err := Load(path, env(nil), nil)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
	if !reflect.DeepEqual(c, Config{}) {
		t.Errorf("config after a file error = %+v, want zero", c)
	}
}

func TestStrictDecoding(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string
		want []string // every substring must appear
	}{
		{"unknown top-level key", "http_addr: 127.0.0.1:8080\nhttp_adr: x\n",
			[]string{`line 2: unknown key "http_adr"`, "known keys: http_addr, grpc_addr"}},
		{"unknown nested key", "influx:\n  url: http://h:8086\n  bukket: x\n",
			[]string{`line 3: unknown key "influx.bukket"`, "known keys under influx: url, token, org, bucket"}},
		{"unknown key in flow mapping", "log: {level: info, colour: true}\n",
			[]string{`line 1: unknown key "log.colour"`, "level, format"}},
		{"every unknown key", "a: 1\nb: 2\n",
			[]string{`line 1: unknown key "a"`, `line 2: unknown key "b"`}},
		{"list where a string goes", "roles: [api]\nhttp_addr: [a]\n",
			[]string{"line 2: http_addr: cannot unmarshal !!seq into a string"}},
		{"string where a list goes", "roles: collector\n",
			[]string{"line 1: roles: cannot unmarshal !!str `collector` into a list of strings"}},
		{"string where a section goes", "log: text\n",
			[]string{"line 1: log: cannot unmarshal !!str `text` into a mapping (level, format)"}},
		{"list in a section", "influx:\n  bucket: [a, b]\n",
			[]string{"line 2: influx.bucket: cannot unmarshal !!seq into a string"}},
		{"list in a flow section", "log: {level: [debug]}\n",
			[]string{"line 1: log.level: cannot unmarshal !!seq into a string"}},
		{"not a mapping", "- a\n",
			[]string{"line 1: cannot unmarshal !!seq into a mapping of settings"}},
		{"list of mappings", "- http_addr: a:1\n",
			[]string{"parkcarbon.yaml: line 1: cannot unmarshal !!seq into a mapping of settings"}},
		{"duplicate key", "http_addr: a:1\nhttp_addr: b:2\n",
			[]string{`line 2: mapping key "http_addr" already defined at line 1`}},
		{"two documents", "http_addr: a:1\n---\nhttp_addr: b:2\n",
			[]string{"line 2: a second YAML document; put all settings in one"}},
		{"syntax error", "http_addr: a\n  grpc_addr: b\n",
			[]string{"yaml: line 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, tc.yaml)
			_, err := Load(path, env(nil), nil)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "config file "+path) {
				t.Errorf("error %q does not name the file", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
		})
	}
}

func TestNullValues(t *testing.T) {
	path := writeFile(t, "influx:\n  token:\n  org: ~\nroles:\n  - api\nlog:\n")
	c, err := Load(path, env(map[string]string{
		"PARKCARBON_INFLUX_TOKEN": "t",
		"PARKCARBON_INFLUX_ORG":   "o",
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Influx.Token != "" || c.Influx.Org != "" {
		t.Errorf("null did not empty token/org: %+v", c.Influx)
	}
	if c.Log != Default().Log || c.Influx.URL != Default().Influx.URL {
		t.Errorf("null section or sibling changed: %+v %+v", c.Log, c.Influx)
	}
}

// TestGolden loads each testdata/*.yaml with no environment and compares the
// outcome (the redacted configuration or the error) with its .golden file.
// go test -run TestGolden -update rewrites them.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := Load(path, env(nil), nil)
			var got string
			if err != nil {
				got = "error:\n" + err.Error() + "\n"
			} else {
				b, err := yaml.Marshal(c.Redacted())
				if err != nil {
					t.Fatal(err)
				}
				got = "ok:\n" + string(b)
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

func TestFullExample(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.yaml"), env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		HTTPAddr:            "0.0.0.0:8080",
		GRPCAddr:            "0.0.0.0:9090",
		MQTTURL:             "ssl://mqtt.park.example:8883",
		MQTTServicePassword: "collector-secret-do-not-print",
		DataDir:             "/var/lib/parkcarbon",
		DBURL:               "postgres://parkcarbon:db-secret@db.park.example:5432/parkcarbon?sslmode=verify-full",
		Influx: Influx{
			URL:    "https://influx.park.example:8086",
			Token:  "influx-secret-token",
			Org:    "park-ops",
			Bucket: "parkcarbon/autogen",
		},
		AdminToken: "0123456789abcdef0123456789abcdef0123456789ab",
		Timezone:   "Asia/Urumqi",
		Roles:      []string{"collector", "api", "accounting", "alerting"},
		Log:        Log{Level: "warn", Format: "json"},

		RollupInterval: "5s", AlertInterval: "30s",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
	if c.SQLiteFile() != "" {
		t.Errorf("SQLiteFile() = %q with PostgreSQL", c.SQLiteFile())
	}
	if got := c.Location().String(); got != "Asia/Urumqi" {
		t.Errorf("Location() = %s", got)
	}
}

func TestRedacted(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "full.yaml"), env(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.MQTTURL = "tcp://collector:mqtt-secret@broker:1883"
	r := c.Redacted()
	b, err := yaml.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{c.AdminToken, c.Influx.Token, c.MQTTServicePassword, "db-secret", "mqtt-secret"} {
		if strings.Contains(string(b), secret) {
			t.Errorf("redacted config shows %q:\n%s", secret, b)
		}
	}
	if !strings.Contains(r.DBURL, "db.park.example:5432/parkcarbon") || r.HTTPAddr != c.HTTPAddr {
		t.Errorf("redaction lost non-secret parts: %+v", r)
	}
	r.Roles[0] = "changed"
	if c.Roles[0] == "changed" {
		t.Error("Redacted shares Roles with the original")
	}
}

func TestSQLiteFile(t *testing.T) {
	c := Default()
	c.DataDir = "/var/lib/parkcarbon"
	if got, want := c.SQLiteFile(), filepath.Join("/var/lib/parkcarbon", "parkcarbon.db"); got != want {
		t.Errorf("SQLiteFile() = %q, want %q", got, want)
	}
	c.DBURL = "postgres://localhost/parkcarbon"
	if got := c.SQLiteFile(); got != "" {
		t.Errorf("SQLiteFile() with DBURL = %q, want empty", got)
	}
}

func TestHasRole(t *testing.T) {
	c := Default()
	c.Roles = []string{"api", "alerting"}
	for _, tc := range []struct {
		role string
		want bool
	}{{"api", true}, {"alerting", true}, {"collector", false}, {"accounting", false}, {"", false}} {
		t.Run(tc.role, func(t *testing.T) {
			if got := c.HasRole(tc.role); got != tc.want {
				t.Errorf("HasRole(%q) = %v", tc.role, got)
			}
		})
	}
}

func TestLocation(t *testing.T) {
	c := Default()
	loc := c.Location()
	if loc.String() != "Asia/Shanghai" {
		t.Fatalf("Location() = %s", loc)
	}
	// China Standard Time, no daylight saving.
	if _, off := time.Date(2026, 7, 1, 12, 0, 0, 0, loc).Zone(); off != 8*3600 {
		t.Errorf("offset %d, want +8h", off)
	}
	c.Timezone = "Nowhere/Invalid"
	if got := c.Location().String(); got != "UTC" {
		t.Errorf("invalid zone: Location() = %s, want UTC", got)
	}
}

func TestSlogLevel(t *testing.T) {
	for _, tc := range []struct {
		level string
		want  string
	}{{"debug", "DEBUG"}, {"info", "INFO"}, {"warn", "WARN"}, {"error", "ERROR"}, {"bogus", "INFO"}} {
		t.Run(tc.level, func(t *testing.T) {
			if got := (Log{Level: tc.level}).SlogLevel().String(); got != tc.want {
				t.Errorf("SlogLevel() = %s, want %s", got, tc.want)
			}
		})
	}
}
