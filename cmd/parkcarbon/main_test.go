package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parkcarbon-cli")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "parkcarbon")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build parkcarbon: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// run executes the binary with a clean PARKCARBON_* environment plus env.
func run(t *testing.T, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARKCARBON_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCLI(t *testing.T) {
	data := t.TempDir()
	env := []string{"PARKCARBON_DATA_DIR=" + data}
	if out, err := run(t, env, "migrate"); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	out, err := run(t, env, "token", "create", "--role", "admin", "--name", "ops lead")
	if err != nil {
		t.Fatalf("token create: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	token := lines[len(lines)-1]
	if !strings.HasPrefix(token, "pct_") {
		t.Fatalf("token create printed %q, want the token on the last line", out)
	}
	if out, err := run(t, env, "token", "create", "--role", "operator", "--park", "nope"); err == nil || !strings.Contains(out, "nope") {
		t.Fatalf("token for a missing park: err=%v out=%s; want an error naming the park", err, out)
	}

	// serve answers with the CLI-issued token and refuses a missing one.
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = localsvc.FreePort(); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "serve", "--data-dir", data,
		fmt.Sprintf("--http-addr=127.0.0.1:%d", ports[0]), fmt.Sprintf("--grpc-addr=127.0.0.1:%d", ports[1]),
		fmt.Sprintf("--mqtt-addr=127.0.0.1:%d", ports[2]))
	cmd.Env = append(os.Environ(), "PARKCARBON_LOG_LEVEL=warn")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(os.Interrupt); _ = cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not answer /healthz: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, tt := range []struct {
		token string
		want  int
	}{{token, 200}, {"", 401}, {"pct_wrong", 401}} {
		req, _ := http.NewRequest("GET", base+"/api/v1/parks", nil)
		if tt.token != "" {
			req.Header.Set("Authorization", "Bearer "+tt.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.want {
			t.Errorf("GET /api/v1/parks with %q: %d, want %d", tt.token, resp.StatusCode, tt.want)
		}
	}

	// mosquitto-acl: a gateway registered over the API logs in to a real Mosquitto configured
	// with the generated files, with the password from its create response.
	post := func(path, body string) map[string]any {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
			t.Fatalf("POST %s: %d %v %v", path, resp.StatusCode, out, err)
		}
		return out
	}
	post("/api/v1/parks", `{"id":"p1","name":"Park"}`)
	password := post("/api/v1/parks/p1/gateways", `{"id":"gw-1"}`)["password"].(string)
	aclDir := t.TempDir()
	if out, err := run(t, []string{"PARKCARBON_DATA_DIR=" + data}, "mosquitto-acl", "--out-dir", aclDir); err == nil {
		t.Fatalf("mosquitto-acl without a service password succeeded: %s", out)
	}
	if out, err := run(t, []string{"PARKCARBON_DATA_DIR=" + data, "PARKCARBON_MQTT_SERVICE_PASSWORD=collector-secret"},
		"mosquitto-acl", "--out-dir", aclDir); err != nil {
		t.Fatalf("mosquitto-acl: %v\n%s", err, out)
	}
	mq := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{
		PasswordFile: filepath.Join(aclDir, "passwd"), ACLFile: filepath.Join(aclDir, "acl")})
	for _, tt := range []struct {
		user, password string
		ok             bool
	}{{"gw-1", password, true}, {"gw-1", "wrong", false}, {"parkcarbon", "collector-secret", true}, {"", "", false}} {
		c := paho.NewClient(paho.NewClientOptions().AddBroker(mq.URL).SetClientID("cli-test-" + tt.user).
			SetUsername(tt.user).SetPassword(tt.password).SetConnectTimeout(5 * time.Second))
		tok := c.Connect()
		ok := tok.WaitTimeout(10*time.Second) && tok.Error() == nil
		if ok != tt.ok {
			t.Errorf("mosquitto login as %q: ok=%v (%v), want %v", tt.user, ok, tok.Error(), tt.ok)
		}
		if ok {
			c.Disconnect(100)
		}
	}
}

func TestCLIRefusesBadConfiguration(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "parkcarbon.yaml")
	if err := os.WriteFile(cfg, []byte("http_addr: 127.0.0.1:0\nhttp_adress: typo\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"serve", "--config", cfg}, "http_adress"},
		{[]string{"PARKCARBON_TIMEZONE=Mars/Base"}, []string{"migrate"}, "PARKCARBON_TIMEZONE"},
		{[]string{"PARKCARBON_ADMIN_TOKEN=short"}, []string{"migrate"}, "PARKCARBON_ADMIN_TOKEN"},
		{nil, []string{"token", "create"}, "--role"},
	} {
		out, err := run(t, append(tt.env, "PARKCARBON_DATA_DIR="+t.TempDir()), tt.args...)
		if err == nil || !strings.Contains(out, tt.want) {
			t.Errorf("%v %v: err=%v, output %q; want a failure naming %s", tt.env, tt.args, err, out, tt.want)
		}
	}
}
