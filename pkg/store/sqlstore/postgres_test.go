package sqlstore

import (
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
)

// openPostgres opens a store on a new database of the test binary's shared PostgreSQL cluster.
func openPostgres(t *testing.T) *Store {
	t.Helper()
	if testing.Short() {
		t.Skip("PostgreSQL tests start a real server: skipped with -short")
	}
	dsn := localsvc.PostgresForTest(t)
	s, err := Open(t.Context(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Registered after PostgresForTest's cleanup, so it runs before the database is dropped.
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if s.Dialect() != DialectPostgres {
		t.Fatalf("dialect = %q", s.Dialect())
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPostgres(t *testing.T) { testStore(t, openPostgres) }
