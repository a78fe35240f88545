package broker

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/localsvc"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

func TestMosquittoFilesGolden(t *testing.T) {
	const h1, h2, h3 = "$7$101$c2FsdDE=$aGFzaDE=", "$7$101$c2FsdDI=$aGFzaDI=", "$7$101$c2FsdDM=$aGFzaDM="
	gateways := []registry.Gateway{
		{ID: "gw-b", ParkID: "p1", PasswordHash: h1},
		{ID: "gw-a", ParkID: "p2", PasswordHash: h2},
		{ID: "gw-a", ParkID: "p9", PasswordHash: h3},          // duplicate id: the first wins
		{ID: "collector", ParkID: "p1", PasswordHash: h3},     // shadowed by the service account
		{ID: "Bad ID", ParkID: "p1", PasswordHash: h3},        // not a registry id
		{ID: "gw-c", ParkID: "", PasswordHash: h3},            // no park
		{ID: "gw-d", ParkID: "p1", PasswordHash: "plaintext"}, // not a $7$ hash
	}
	service := map[string]string{
		"collector":      h1,
		"parkcarbon-api": h2,
		"a b":            h3, // not a user name
		"reporter":       "bad:hash",
	}
	passwd, acl := MosquittoFiles(gateways, service)
	for i := 0; i < 5; i++ { // map order must not show
		p2, a2 := MosquittoFiles(gateways, service)
		if !bytes.Equal(p2, passwd) || !bytes.Equal(a2, acl) {
			t.Fatal("output differs between calls")
		}
	}
	for name, got := range map[string][]byte{"passwd": passwd, "acl": acl} {
		path := filepath.Join("testdata", "mosquitto", name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (go test -update to rewrite):\n%s", name, path, got)
		}
	}
}

func (f *fakeGateways) list() []registry.Gateway {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []registry.Gateway
	for _, g := range f.gws {
		out = append(out, g)
	}
	slices.SortFunc(out, func(a, b registry.Gateway) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// TestMosquittoRights runs the rights check of the embedded broker against a real Mosquitto
// (deploy/local, through localsvc) configured with MosquittoFiles.
func TestMosquittoRights(t *testing.T) {
	gws, service := newFixture(t)
	passwd, acl := MosquittoFiles(gws.list(), service)
	dir := t.TempDir()
	opts := localsvc.MosquittoOptions{PasswordFile: filepath.Join(dir, "passwd"), ACLFile: filepath.Join(dir, "acl")}
	if err := os.WriteFile(opts.PasswordFile, passwd, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(opts.ACLFile, acl, 0o600); err != nil {
		t.Fatal(err)
	}
	addr := localsvc.MosquittoForTest(t, opts).Addr
	// Mosquitto 2.0 grants a subscription its ACL refuses in SUBACK and then delivers nothing
	// on it; the embedded broker refuses it with 0x80.
	testRights(t, addr, false)

	// Mosquitto refuses bad credentials with "not authorised" (3.1.1: 0x05, 5: 0x87) where the
	// embedded broker says "bad user name or password" (0x04, 0x86): clients must treat both
	// as a credential failure.
	t.Run("connack codes", func(t *testing.T) {
		for _, tt := range []struct {
			version byte
			want    byte
		}{{4, 0x05}, {5, 0x87}} {
			if got := rawConnect(t, addr, tt.version, "gw1", "wrong"); got != tt.want {
				t.Errorf("protocol %d, wrong password: CONNACK %#x, want %#x", tt.version, got, tt.want)
			}
		}
	})
}
