package localsvc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds a start by the test helpers, including a first install (influxd builds in
// one to two minutes).
const startTimeout = 5 * time.Minute

// InfluxDBForTest starts InfluxDB in t.TempDir() on a free port and stops it in t.Cleanup. It
// fails the test if the server does not start. Starting takes a few seconds (Flux initialises);
// tests that neither stop nor kill the server can use SharedInfluxDBForTest instead.
func InfluxDBForTest(t testing.TB) *InfluxDB {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	begin := time.Now()
	i, err := startOnFreePort(func(port int) (*InfluxDB, error) { return StartInfluxDB(ctx, dir, port) })
	if err != nil {
		t.Fatalf("start influxdb: %v", err)
	}
	t.Cleanup(func() {
		if err := i.Stop(); err != nil {
			t.Errorf("stop influxdb: %v", err)
		}
	})
	t.Logf("influxdb ready on %s in %v", i.URL, time.Since(begin).Round(time.Millisecond))
	return i
}

// MosquittoForTest starts Mosquitto in t.TempDir() on a free port and stops it in t.Cleanup. It
// fails the test if the broker does not start.
func MosquittoForTest(t testing.TB, opts MosquittoOptions) *Mosquitto {
	t.Helper()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), startTimeout)
	defer cancel()
	begin := time.Now()
	m, err := startOnFreePort(func(port int) (*Mosquitto, error) { return StartMosquitto(ctx, dir, port, opts) })
	if err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop mosquitto: %v", err)
		}
	})
	t.Logf("mosquitto ready on %s in %v", m.URL, time.Since(begin).Round(time.Millisecond))
	return m
}

// PostgresForTest returns the DSN of a new database, dropped in t.Cleanup, in a PostgreSQL
// cluster shared by the whole test binary. The cluster starts on first use, in a new temporary
// directory; StopShared stops it and removes the directory, and so does the watchdog of
// deploy/local when the test binary exits without calling StopShared.
func PostgresForTest(t testing.TB) string {
	t.Helper()
	pg, err := sharedPostgres()
	if err != nil {
		t.Fatalf("start shared postgres: %v", err)
	}
	name := testDatabaseName(t.Name())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	dsn, err := pg.CreateDatabase(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := pg.DropDatabase(ctx, name); err != nil {
			t.Errorf("postgres: %v", err)
		}
	})
	return dsn
}

// SharedInfluxDBForTest returns a new database, dropped in t.Cleanup, on an InfluxDB server shared
// by the whole test binary and started on first use (see PostgresForTest for its lifetime). The
// returned value's Database and Bucket name that database; its Start, Stop and Kill fail: use
// InfluxDBForTest for tests that restart or kill the server.
func SharedInfluxDBForTest(t testing.TB) *InfluxDB {
	t.Helper()
	srv, err := sharedInfluxDB()
	if err != nil {
		t.Fatalf("start shared influxdb: %v", err)
	}
	name := testDatabaseName(t.Name())
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := srv.query(ctx, "CREATE DATABASE "+quoteIdent(name)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := srv.query(ctx, "DROP DATABASE "+quoteIdent(name)); err != nil {
			t.Errorf("%v", err)
		}
	})
	return &InfluxDB{
		URL:      srv.URL,
		Database: name,
		Bucket:   name + "/autogen",
		Dir:      srv.Dir,
		Port:     srv.Port,
		shared:   true,
	}
}

// shared holds the services shared by a test binary: the only package-level state, since
// their whole point is to outlive a single test.
var shared struct {
	mu        sync.Mutex
	pg        *Postgres
	pgErr     error
	influx    *InfluxDB
	influxErr error
}

// sharedEnv makes the watchdog remove the temporary directory when the test binary exits.
var sharedEnv = []string{"LOCALSVC_REMOVE_DIR=1"}

func sharedPostgres() (*Postgres, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.pg == nil && shared.pgErr == nil {
		shared.pg, shared.pgErr = startShared("postgres", func(ctx context.Context, dir string, port int) (*Postgres, error) {
			p := &Postgres{Dir: dir, Port: port, svc: service{script: "postgres.sh", dir: dir, env: sharedEnv}}
			return p, p.Start(ctx)
		})
	}
	return shared.pg, shared.pgErr
}

func sharedInfluxDB() (*InfluxDB, error) {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.influx == nil && shared.influxErr == nil {
		shared.influx, shared.influxErr = startShared("influxdb", func(ctx context.Context, dir string, port int) (*InfluxDB, error) {
			i, err := newInfluxDB(dir, port)
			if err != nil {
				return nil, err
			}
			i.svc.env = sharedEnv
			return i, i.Start(ctx)
		})
	}
	return shared.influx, shared.influxErr
}

// startShared starts a shared service in a new temporary directory on a free port.
func startShared[T any](name string, start func(ctx context.Context, dir string, port int) (T, error)) (T, error) {
	var zero T
	dir, err := os.MkdirTemp("", "parkcarbon-"+name+"-")
	if err != nil {
		return zero, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	v, err := startOnFreePort(func(port int) (T, error) { return start(ctx, dir, port) })
	if err != nil {
		_ = os.RemoveAll(dir)
		return zero, err
	}
	return v, nil
}

// StopShared stops the services started by PostgresForTest and SharedInfluxDBForTest, if any, and
// removes their directories. Call it from TestMain after m.Run; a later PostgresForTest or
// SharedInfluxDBForTest starts a new one.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	var errs []error
	if shared.pg != nil {
		errs = append(errs, shared.pg.Stop(), removeAll(shared.pg.Dir))
	}
	if shared.influx != nil {
		errs = append(errs, shared.influx.Stop(), removeAll(shared.influx.Dir))
	}
	shared.pg, shared.pgErr, shared.influx, shared.influxErr = nil, nil, nil, nil
	return errors.Join(errs...)
}

// removeAll removes dir, which the watchdog may be removing at the same time.
func removeAll(dir string) error {
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// startOnFreePort calls start with a free port, and again with another one (up to three times)
// when another process took the port in between.
func startOnFreePort[T any](start func(port int) (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range 3 {
		port, perr := FreePort()
		if perr != nil {
			return v, perr
		}
		if v, err = start(port); err == nil || !strings.Contains(err.Error(), "already in use") {
			return v, err
		}
	}
	return v, err
}

// testDatabaseName returns a database name unique to this run of the test, readable in logs.
func testDatabaseName(testName string) string {
	var b strings.Builder
	b.WriteString("t_")
	for _, r := range strings.ToLower(testName) {
		if b.Len() >= 40 {
			break
		}
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	suffix := make([]byte, 4)
	_, _ = rand.Read(suffix) // crypto/rand.Read never fails
	return fmt.Sprintf("%s_%s", b.String(), hex.EncodeToString(suffix))
}
