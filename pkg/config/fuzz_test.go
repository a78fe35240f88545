package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLoadYAML feeds arbitrary bytes to the YAML layer of Load: it must never
// panic, and when it fails the message must name the file.
func FuzzLoadYAML(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", "~", "null", "[]", "{}", "---\n...\n", "a: &x [*x]\n",
		"mqtt_addr:\n", "influx: ~\n", "log: {level: *a}\n", "<<: {http_addr: x}\n",
		"roles: [&r api, *r]\n", "influx: &i {url: x}\nlog: *i\n", "? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		_, err := decodeYAML(&c, data, "config file fuzz.yaml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config file fuzz.yaml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		// Whatever decoded must be safe to validate and use.
		_ = c.Validate()
		_ = c.Location()
		_ = c.Redacted()
		_ = c.SQLiteFile()
		_ = c.Log.SlogLevel()
	})
}
