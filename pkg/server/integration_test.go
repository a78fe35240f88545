package server

import (
	"os"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := localsvc.StopShared(); err != nil && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// TestReadyWithRealInfluxDB checks /readyz against a real InfluxDB 1.8.10.
func TestReadyWithRealInfluxDB(t *testing.T) {
	influx := localsvc.SharedInfluxDBForTest(t)
	cfg := testConfig(t)
	cfg.Influx.URL = influx.URL
	cfg.Influx.Bucket = influx.Bucket
	ts := startServer(t, cfg)
	var code int
	var out map[string]any
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if code, out, _ = ts.do("GET", "/readyz", "", nil); code == 200 {
			break
		}
	}
	if code != 200 || out["status"] != "ready" {
		t.Fatalf("readyz with InfluxDB at %s: %d %v", influx.URL, code, out)
	}
}

// TestServerOnPostgres runs the registry lifecycle and the authorization matrix with the
// registry in a real PostgreSQL instead of SQLite.
func TestServerOnPostgres(t *testing.T) {
	dsn := localsvc.PostgresForTest(t)
	cfg := testConfig(t)
	cfg.DBURL = dsn
	ts := startServer(t, cfg)
	if ts.Store.Dialect() != "postgres" {
		t.Fatalf("store dialect %s, want postgres", ts.Store.Dialect())
	}
	f := seed(t, ts)
	out := ts.must(200, "GET", "/api/v1/parks/p1/meters", f.tokens["enterprise"], nil)
	if ms := out["meters"].([]any); len(ms) != 1 {
		t.Fatalf("enterprise sees %d meters on PostgreSQL, want 1", len(ms))
	}
	ts.must(409, "POST", "/api/v1/parks", testAdminToken, map[string]any{"id": "p1", "name": "dup"})
	ts.must(409, "DELETE", "/api/v1/parks/p1", testAdminToken, nil)
	ts.must(204, "DELETE", "/api/v1/parks/p1?cascade=true", testAdminToken, nil)
	ts.must(404, "GET", "/api/v1/parks/p1/meters/m-e1", testAdminToken, nil)
}
