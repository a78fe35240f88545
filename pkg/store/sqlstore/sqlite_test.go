package sqlstore

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

func openSQLite(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), filepath.Join(t.TempDir(), "data", "parkcarbon.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if s.Dialect() != DialectSQLite {
		t.Fatalf("dialect = %q", s.Dialect())
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSQLite(t *testing.T) { testStore(t, openSQLite) }

// TestSQLiteTwoStores writes through two stores on one file, as two processes would (serve and
// an administration command): their transactions must queue on the busy timeout, not fail
// with SQLITE_BUSY.
func TestSQLiteTwoStores(t *testing.T) {
	path := filepath.Join(t.TempDir(), "parkcarbon.db")
	stores := make([]*Store, 2)
	for i := range stores {
		s, err := Open(t.Context(), path, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	must(t, stores[0].CreatePark(t.Context(), park("p1"), actor))
	const perStore = 10
	var wg sync.WaitGroup
	for i, s := range stores {
		for j := range perStore {
			wg.Go(func() {
				if err := s.CreateMeter(t.Context(), meter("p1", fmt.Sprintf("m%d-%d", i, j), "", ""), actor); err != nil {
					t.Errorf("store %d writer %d: %v", i, j, err)
				}
			})
		}
	}
	wg.Wait()
	meters, err := stores[1].ListMeters(t.Context(), registry.MeterFilter{ParkID: "p1"}, registry.Page{})
	must(t, err)
	if len(meters) != 2*perStore {
		t.Errorf("%d meters, want %d", len(meters), 2*perStore)
	}
}
