package sqlstore

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenPostgresErrorHidesPassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	// Port 1 on loopback: nothing listens, the connection is refused at once.
	_, err := Open(ctx, "postgres://parkcarbon:s3cret-pw@127.0.0.1:1/parkcarbon?sslmode=disable&connect_timeout=5", nil)
	if err == nil {
		t.Fatal("Open succeeded without a server")
	}
	if strings.Contains(err.Error(), "s3cret-pw") {
		t.Errorf("error leaks the password: %v", err)
	}
}

func TestOpenEmpty(t *testing.T) {
	if _, err := Open(t.Context(), " ", nil); err == nil {
		t.Error("Open of an empty address succeeded")
	}
}

func TestSQLitePragmas(t *testing.T) {
	dir := t.TempDir()
	for _, dsn := range []string{
		filepath.Join(dir, "plain.db"),
		filepath.Join(dir, "params.db") + "?_pragma=cache_size(-4000)",
		"file:" + filepath.Join(dir, "uri.db"),
	} {
		t.Run(filepath.Base(dsn), func(t *testing.T) {
			s, err := Open(t.Context(), dsn, nil)
			must(t, err)
			defer s.Close()
			// Several connections, since the pragmas are per connection.
			conns := make([]interface{ Close() error }, 3)
			for i := range conns {
				c, err := s.DB().Conn(t.Context())
				must(t, err)
				conns[i] = c
				var mode string
				var fk, busy int
				must(t, c.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode))
				must(t, c.QueryRowContext(t.Context(), `PRAGMA foreign_keys`).Scan(&fk))
				must(t, c.QueryRowContext(t.Context(), `PRAGMA busy_timeout`).Scan(&busy))
				if mode != "wal" || fk != 1 || busy != 10000 {
					t.Errorf("connection %d: journal_mode %s, foreign_keys %d, busy_timeout %d", i, mode, fk, busy)
				}
			}
			for _, c := range conns {
				must(t, c.Close())
			}
		})
	}
}
