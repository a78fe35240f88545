package localsvc_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/jackc/pgx/v5"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

func TestMain(m *testing.M) {
	if os.Getenv("LOCALSVC_TEST_HELPER") == "mosquitto" {
		ownerProcess()
		return
	}
	code := m.Run()
	if err := localsvc.StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stop shared services:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// ownerProcess is the child of TestWatchdogStopsServiceWhenOwnerDies: it starts a broker, prints
// its URL and waits to be killed.
func ownerProcess() {
	port, err := localsvc.FreePort()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m, err := localsvc.StartMosquitto(context.Background(), os.Getenv("LOCALSVC_TEST_DIR"), port, localsvc.MosquittoOptions{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(m.Addr)
	time.Sleep(time.Hour)
}

func TestInfluxDBWriteQueryKillRestart(t *testing.T) {
	i := localsvc.InfluxDBForTest(t)
	if i.Database != "parkcarbon" || i.Bucket != "parkcarbon/autogen" {
		t.Fatalf("database %q bucket %q, want parkcarbon and parkcarbon/autogen", i.Database, i.Bucket)
	}
	ts := time.Date(2025, 3, 1, 8, 0, 0, 0, time.UTC)
	writeLine(t, i, fmt.Sprintf("energy,meter=m1 kwh=42.5 %d", ts.UnixNano()))

	check := func(stage string) {
		t.Helper()
		if got := influxQL(t, i, `SELECT "kwh" FROM "energy" WHERE "meter" = 'm1'`); len(got) != 1 || got[0][1] != 42.5 {
			t.Fatalf("%s: InfluxQL rows %v, want one with kwh 42.5", stage, got)
		}
		if got := fluxValues(t, i, `from(bucket: "`+i.Bucket+`")
			|> range(start: 2025-01-01T00:00:00Z, stop: 2026-01-01T00:00:00Z)
			|> filter(fn: (r) => r._measurement == "energy" and r._field == "kwh")`); len(got) != 1 || got[0] != "42.5" {
			t.Fatalf("%s: Flux values %v, want [42.5]", stage, got)
		}
	}
	check("after write")

	if err := i.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if resp, err := http.Get(i.URL + "/ping"); err == nil {
		resp.Body.Close()
		t.Fatal("influxdb still answers after Kill")
	}
	begin := time.Now()
	if err := i.Start(t.Context()); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	t.Logf("influxdb restarted after kill in %v", time.Since(begin).Round(time.Millisecond))
	check("after kill and restart")
}

func TestSharedInfluxDBDatabasePerTest(t *testing.T) {
	a := localsvc.SharedInfluxDBForTest(t)
	b := localsvc.SharedInfluxDBForTest(t)
	if a.URL != b.URL || a.Database == b.Database || a.Bucket != a.Database+"/autogen" {
		t.Fatalf("want one server and two databases, got %+v and %+v", a, b)
	}
	writeLine(t, a, "energy,meter=m2 kwh=7 1700000000000000000")
	if got := influxQL(t, a, `SELECT "kwh" FROM "energy"`); len(got) != 1 {
		t.Fatalf("database %s: rows %v, want one", a.Database, got)
	}
	if got := influxQL(t, b, `SELECT "kwh" FROM "energy"`); len(got) != 0 {
		t.Fatalf("database %s: rows %v, want none", b.Database, got)
	}
	if err := a.Stop(); err == nil {
		t.Fatal("Stop of a shared server succeeded")
	}
}

func TestPostgresForTestGivesDistinctDatabases(t *testing.T) {
	dsn1 := localsvc.PostgresForTest(t)
	dsn2 := localsvc.PostgresForTest(t)
	if dsn1 == dsn2 {
		t.Fatalf("both databases have the DSN %s", dsn1)
	}
	c1, c2 := pgConnect(t, dsn1), pgConnect(t, dsn2)
	for _, c := range []*pgx.Conn{c1, c2} {
		var one int
		if err := c.QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1: %d, %v", one, err)
		}
	}
	if _, err := c1.Exec(t.Context(), "CREATE TABLE meter (id text PRIMARY KEY)"); err != nil {
		t.Fatal(err)
	}
	var found *string
	if err := c2.QueryRow(t.Context(), "SELECT to_regclass('meter')::text").Scan(&found); err != nil {
		t.Fatal(err)
	}
	if found != nil {
		t.Fatal("a table created in the first database is visible in the second")
	}
}

func TestPostgresCreateDatabaseStopKillRestart(t *testing.T) {
	port, err := localsvc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	pg, err := localsvc.StartPostgres(t.Context(), t.TempDir(), port)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("postgres (initdb and start) ready in %v", time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
	})
	want := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	if pg.DSN != want {
		t.Fatalf("DSN %s, want %s", pg.DSN, want)
	}

	alpha, err := pg.CreateDatabase(t.Context(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	beta, err := pg.CreateDatabase(t.Context(), "beta")
	if err != nil {
		t.Fatal(err)
	}
	if alpha == beta {
		t.Fatalf("both databases have the DSN %s", alpha)
	}
	if _, err := pg.CreateDatabase(t.Context(), "alpha"); err == nil {
		t.Fatal("creating alpha twice succeeded")
	}
	for dsn, name := range map[string]string{alpha: "alpha", beta: "beta"} {
		var got string
		if err := pgConnect(t, dsn).QueryRow(t.Context(), "SELECT current_database()").Scan(&got); err != nil || got != name {
			t.Fatalf("%s: current_database() = %q, %v; want %s", dsn, got, err, name)
		}
	}

	c := pgConnect(t, alpha)
	if _, err := c.Exec(t.Context(), "CREATE TABLE reading (kwh float8); INSERT INTO reading VALUES (42.5)"); err != nil {
		t.Fatal(err)
	}
	c.Close(t.Context())

	for _, restart := range []struct {
		name string
		stop func() error
	}{{"stop", pg.Stop}, {"kill", pg.Kill}} {
		if err := restart.stop(); err != nil {
			t.Fatalf("%s: %v", restart.name, err)
		}
		begin := time.Now()
		if err := pg.Start(t.Context()); err != nil {
			t.Fatalf("start after %s: %v", restart.name, err)
		}
		t.Logf("postgres restarted after %s in %v", restart.name, time.Since(begin).Round(time.Millisecond))
		var kwh float64
		if err := pgConnect(t, alpha).QueryRow(t.Context(), "SELECT kwh FROM reading").Scan(&kwh); err != nil || kwh != 42.5 {
			t.Fatalf("after %s and start: kwh = %v, %v; want 42.5", restart.name, kwh, err)
		}
	}
}

func TestMosquittoRoundTripRestartPersistentSession(t *testing.T) {
	m := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{})
	if m.URL != "tcp://"+m.Addr {
		t.Fatalf("URL %s and Addr %s disagree", m.URL, m.Addr)
	}
	received := make(chan string, 10)
	sub := mqttConnect(t, m.URL, "collector-1", "", "", false, received)
	if tok := sub.Subscribe("pc/test/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	pub := mqttConnect(t, m.URL, "meter-1", "", "", true, nil)
	mqttPublish(t, pub, "pc/test/a", "hello")
	expectMessage(t, received, "pc/test/a hello")

	// A message published while the persistent-session subscriber is away survives a broker
	// restart and is delivered when it comes back.
	sub.Disconnect(250)
	mqttPublish(t, pub, "pc/test/b", "while away")
	pub.Disconnect(250)
	if err := m.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("start after stop: %v", err)
	}
	mqttConnect(t, m.URL, "collector-1", "", "", false, received)
	expectMessage(t, received, "pc/test/b while away")

	// After SIGKILL the broker starts again and serves clients.
	if err := m.Kill(); err != nil {
		t.Fatalf("kill: %v", err)
	}
	if conn, err := net.Dial("tcp", m.Addr); err == nil {
		conn.Close()
		t.Fatal("broker still accepts connections after Kill")
	}
	if err := m.Start(t.Context()); err != nil {
		t.Fatalf("start after kill: %v", err)
	}
	got := make(chan string, 10)
	c := mqttConnect(t, m.URL, "collector-2", "", "", true, got)
	if tok := c.Subscribe("pc/test/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	mqttPublish(t, mqttConnect(t, m.URL, "meter-2", "", "", true, nil), "pc/test/c", "after kill")
	expectMessage(t, got, "pc/test/c after kill")
}

func TestMosquittoPasswordFile(t *testing.T) {
	passwd, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatalf("mosquitto_passwd not found (run deploy/local/install.sh): %v", err)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "passwd")
	if out, err := exec.Command(passwd, "-b", "-c", pwFile, "gateway-1", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	aclFile := filepath.Join(dir, "acl")
	if err := os.WriteFile(aclFile, []byte("user gateway-1\ntopic readwrite pc/#\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := localsvc.MosquittoForTest(t, localsvc.MosquittoOptions{PasswordFile: pwFile, ACLFile: aclFile})

	for _, tc := range []struct{ name, user, password string }{
		{"wrong password", "gateway-1", "wrong"},
		{"unknown user", "gateway-2", "s3cret"},
		{"anonymous", "", ""},
	} {
		c := mqtt.NewClient(mqttOptions(m.URL, "refused-"+strings.ReplaceAll(tc.name, " ", "-"), tc.user, tc.password, true))
		tok := c.Connect()
		if !tok.WaitTimeout(10 * time.Second) {
			t.Fatalf("%s: connect timed out", tc.name)
		}
		if tok.Error() == nil {
			c.Disconnect(0)
			t.Fatalf("%s: connected, want refused", tc.name)
		}
	}

	got := make(chan string, 10)
	c := mqttConnect(t, m.URL, "gateway-1-sub", "gateway-1", "s3cret", true, got)
	if tok := c.Subscribe("pc/gw/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	mqttPublish(t, mqttConnect(t, m.URL, "gateway-1-pub", "gateway-1", "s3cret", true, nil), "pc/gw/1", "authenticated")
	expectMessage(t, got, "pc/gw/1 authenticated")
}

func TestStartFailsOnBusyPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	_, err = localsvc.StartMosquitto(t.Context(), t.TempDir(), port, localsvc.MosquittoOptions{})
	if err == nil || !strings.Contains(err.Error(), "already in use") {
		t.Fatalf("start on a busy port: %v, want an error saying it is in use", err)
	}
}

// TestWatchdogStopsServiceWhenOwnerDies starts a broker from a child process, kills the child
// with SIGKILL and expects the broker to stop.
func TestWatchdogStopsServiceWhenOwnerDies(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "LOCALSVC_TEST_HELPER=mosquitto", "LOCALSVC_TEST_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("owner process: %v: %s", err, stderr.String())
	}
	addr = strings.TrimSpace(addr)
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("broker of the owner process: %v", err)
	}
	conn.Close()

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	// The watchdog removes the pid file once the broker has exited.
	pidFile := filepath.Join(dir, "mosquitto.pid")
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, err := os.Stat(pidFile)
		if os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid file still there 15 s after the owner was killed: %v", err)
		}
	}
	if conn, err := net.Dial("tcp", addr); err == nil {
		conn.Close()
		t.Fatal("broker still accepts connections after its owner was killed")
	}
}

func TestFreePort(t *testing.T) {
	port, err := localsvc.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatalf("port %d from FreePort is not free: %v", port, err)
	}
	l.Close()
}

// writeLine writes line protocol through the v2 write API, as the collector does.
func writeLine(t *testing.T, i *localsvc.InfluxDB, line string) {
	t.Helper()
	u := i.URL + "/api/v2/write?" + url.Values{"bucket": {i.Bucket}, "precision": {"ns"}}.Encode()
	resp, err := http.Post(u, "text/plain; charset=utf-8", strings.NewReader(line))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("v2 write: %s: %s", resp.Status, body)
	}
}

// influxQL returns the rows of the first series of an InfluxQL query.
func influxQL(t *testing.T, i *localsvc.InfluxDB, q string) [][]any {
	t.Helper()
	resp, err := http.Get(i.URL + "/query?" + url.Values{"db": {i.Database}, "q": {q}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Results []struct {
			Series []struct {
				Values [][]any `json:"values"`
			} `json:"series"`
			Error string `json:"error"`
		} `json:"results"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatalf("InfluxQL %s: %s: %v", q, resp.Status, err)
	}
	if r.Error != "" || len(r.Results) != 1 || r.Results[0].Error != "" {
		t.Fatalf("InfluxQL %s: %+v", q, r)
	}
	if len(r.Results[0].Series) == 0 {
		return nil
	}
	return r.Results[0].Series[0].Values
}

// fluxValues runs a Flux query through the v2 query API and returns the _value column.
func fluxValues(t *testing.T, i *localsvc.InfluxDB, q string) []string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"query": q, "type": "flux"})
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, i.URL+"/api/v2/query", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/csv")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("Flux query: %s: %s", resp.Status, raw)
	}
	r := csv.NewReader(bytes.NewReader(raw))
	r.FieldsPerRecord = -1
	records, err := r.ReadAll()
	if err != nil {
		t.Fatalf("Flux result %q: %v", raw, err)
	}
	var values []string
	col := -1
	for _, rec := range records {
		switch {
		case len(rec) == 0 || len(rec) == 1 && rec[0] == "" || strings.HasPrefix(rec[0], "#"):
		case col < 0:
			for j, name := range rec {
				if name == "_value" {
					col = j
				}
			}
			if col < 0 {
				t.Fatalf("Flux result without _value column: %q", raw)
			}
		case col < len(rec):
			values = append(values, rec[col])
		}
	}
	return values
}

func pgConnect(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect %s: %v", dsn, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func mqttOptions(brokerURL, clientID, user, password string, clean bool) *mqtt.ClientOptions {
	return mqtt.NewClientOptions().
		AddBroker(brokerURL).
		SetClientID(clientID).
		SetUsername(user).
		SetPassword(password).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second)
}

// mqttConnect connects a client; messages it receives go to received as "topic payload".
func mqttConnect(t *testing.T, brokerURL, clientID, user, password string, clean bool, received chan<- string) mqtt.Client {
	t.Helper()
	opts := mqttOptions(brokerURL, clientID, user, password, clean)
	if received != nil {
		opts.SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
			received <- msg.Topic() + " " + string(msg.Payload())
		})
	}
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", clientID, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

// mqttPublish publishes with QoS 1 and waits for the broker's acknowledgement.
func mqttPublish(t *testing.T, c mqtt.Client, topic, payload string) {
	t.Helper()
	if tok := c.Publish(topic, 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func expectMessage(t *testing.T, received <-chan string, want string) {
	t.Helper()
	select {
	case got := <-received:
		if got != want {
			t.Fatalf("received %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no message %q within 10 s", want)
	}
}
