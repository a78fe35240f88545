package localsvc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// DefaultInfluxDatabase is the database StartInfluxDB creates.
const DefaultInfluxDatabase = "parkcarbon"

// errShared is returned by the lifecycle methods of the views SharedInfluxDBForTest returns.
var errShared = errors.New("the server is shared by the whole test binary: only StopShared stops it")

// InfluxDB is an InfluxDB 1.8 server run by deploy/local/influxdb.sh, with the v2 write API and
// Flux enabled and authentication disabled (clients send no token).
type InfluxDB struct {
	URL      string // http://127.0.0.1:port
	Database string // InfluxQL database
	Bucket   string // v2 API bucket: Database + "/autogen"
	Dir      string
	Port     int

	rpcPort int // backup/restore service, so that instances do not clash on 8088
	svc     service
	shared  bool
}

// StartInfluxDB starts InfluxDB on 127.0.0.1:port with its data in dir, waits until it answers,
// and creates the database DefaultInfluxDatabase.
func StartInfluxDB(ctx context.Context, dir string, port int) (*InfluxDB, error) {
	i, err := newInfluxDB(dir, port)
	if err != nil {
		return nil, err
	}
	if err := i.Start(ctx); err != nil {
		return nil, err
	}
	return i, nil
}

// newInfluxDB describes a server on port, with a free port for its RPC service.
func newInfluxDB(dir string, port int) (*InfluxDB, error) {
	rpcPort, err := FreePort()
	for err == nil && rpcPort == port {
		rpcPort, err = FreePort()
	}
	if err != nil {
		return nil, err
	}
	return &InfluxDB{
		Database: DefaultInfluxDatabase,
		Bucket:   DefaultInfluxDatabase + "/autogen",
		Dir:      dir,
		Port:     port,
		rpcPort:  rpcPort,
		svc:      service{script: "influxdb.sh", dir: dir},
	}, nil
}

// Start starts the server again on the same directory and ports, after Stop or Kill.
func (i *InfluxDB) Start(ctx context.Context) error {
	if i.shared {
		return fmt.Errorf("start influxdb: %w", errShared)
	}
	out, err := i.svc.start(ctx, []string{"INFLUX_DB=" + i.Database},
		strconv.Itoa(i.Port), strconv.Itoa(i.rpcPort))
	if err != nil {
		return err
	}
	i.URL = out
	return nil
}

// Stop stops the server gracefully and waits for it to exit.
func (i *InfluxDB) Stop() error {
	if i.shared {
		return fmt.Errorf("stop influxdb: %w", errShared)
	}
	return i.svc.stop("stop")
}

// Kill kills the server with SIGKILL, for fault tests: writes acknowledged before are in the WAL
// and are replayed by Start.
func (i *InfluxDB) Kill() error {
	if i.shared {
		return fmt.Errorf("kill influxdb: %w", errShared)
	}
	return i.svc.stop("kill")
}

// query runs an InfluxQL statement that returns no rows, such as CREATE DATABASE.
func (i *InfluxDB) query(ctx context.Context, q string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, i.URL+"/query",
		strings.NewReader(url.Values{"q": {q}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("influxdb %s: %w", q, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return fmt.Errorf("influxdb %s: %w", q, err)
	}
	if resp.StatusCode != http.StatusOK || strings.Contains(string(body), `"error"`) {
		return fmt.Errorf("influxdb %s: %s: %s", q, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// quoteIdent quotes an InfluxQL identifier.
func quoteIdent(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
