package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/parkcarbon/parkcarbon/pkg/config"
	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
)

const testAdminToken = "pct_test-admin-token-0123456789abcdefghijklmnop"

// testServer is the whole server in-process on loopback port 0.
type testServer struct {
	*Server
	t      testing.TB
	base   string
	conn   *grpc.ClientConn
	reg    pb.RegistryServiceClient
	tokens pb.AuthServiceClient
}

func testConfig(t testing.TB) config.Config {
	cfg := config.Default()
	cfg.HTTPAddr, cfg.GRPCAddr, cfg.MQTTAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.DataDir = t.TempDir()
	cfg.AdminToken = testAdminToken
	cfg.Influx.URL = "http://127.0.0.1:1" // nothing listens: readiness must say so
	return cfg
}

func startServer(t testing.TB, cfg config.Config) *testServer {
	t.Helper()
	return startServerWith(t, cfg, nil)
}

// startServerWith lets a test set the server's unexported knobs before it starts.
func startServerWith(t testing.TB, cfg config.Config, tune func(*Server)) *testServer {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	s, err := New(ctx, cfg, logger)
	if err != nil {
		t.Fatalf("new server: %v", err)
	}
	s.rollupEvery = 200 * time.Millisecond
	if tune != nil {
		tune(s)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	conn, err := grpc.NewClient(s.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &testServer{Server: s, t: t, base: "http://" + s.HTTPAddr(), conn: conn,
		reg: pb.NewRegistryServiceClient(conn), tokens: pb.NewAuthServiceClient(conn)}
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// do sends a REST request and returns the status and decoded JSON body.
func (ts *testServer) do(method, path, token string, body any) (int, map[string]any, http.Header) {
	ts.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	case csvBody:
		rd = strings.NewReader(string(b))
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			ts.t.Fatal(err)
		}
		rd = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, ts.base+path, rd)
	if err != nil {
		ts.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if _, csv := body.(csvBody); csv {
		req.Header.Set("Content-Type", "text/csv")
	} else if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		ts.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		ts.t.Fatal(err)
	}
	var out map[string]any
	if len(raw) > 0 && strings.Contains(resp.Header.Get("Content-Type"), "json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			ts.t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// must sends a REST request and fails unless it returns want.
func (ts *testServer) must(want int, method, path, token string, body any) map[string]any {
	ts.t.Helper()
	code, out, _ := ts.do(method, path, token, body)
	if code != want {
		ts.t.Fatalf("%s %s: status %d, want %d: %v", method, path, code, want, out)
	}
	return out
}

// csvBody is a request body sent as text/csv.
type csvBody string

func withToken(token string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	_ = cancel // the deadline ends the context; tests are short
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

func TestHealthReadyMetrics(t *testing.T) {
	ts := startServer(t, testConfig(t))
	out := ts.must(200, "GET", "/healthz", "", nil)
	if out["status"] != "ok" {
		t.Fatalf("healthz: %v", out)
	}
	code, out, _ := ts.do("GET", "/readyz", "", nil)
	deps, _ := out["dependencies"].(map[string]any)
	if code != 503 || deps == nil {
		t.Fatalf("readyz without InfluxDB: %d %v, want 503 with dependencies", code, out)
	}
	influx, _ := deps["influxdb"].(map[string]any)
	if influx["ready"] != false || !strings.Contains(influx["error"].(string), "127.0.0.1:1") {
		t.Fatalf("readyz influxdb = %v, want not ready with the reason", influx)
	}
	for _, dep := range []string{"sql", "mqtt"} {
		if d, _ := deps[dep].(map[string]any); d["ready"] != true {
			t.Fatalf("readyz %s = %v, want ready", dep, d)
		}
	}
	resp, err := http.Get(ts.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`parkcarbon_dependency_up{dependency="influxdb"} 0`, `parkcarbon_dependency_up{dependency="sql"} 1`, "go_goroutines"} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
