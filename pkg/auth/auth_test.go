package auth

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestAuthorize(t *testing.T) {
	admin := &Principal{Role: RoleAdmin}
	op := &Principal{Role: RoleOperator, ParkIDs: []string{"p1"}}
	aud := &Principal{Role: RoleAuditor, ParkIDs: []string{"p1", "p2"}}
	ent := &Principal{Role: RoleEnterprise, ParkIDs: []string{"p1"}, EnterpriseID: "e1"}
	gw := &Principal{Role: RoleGateway, ParkIDs: []string{"p1"}, GatewayID: "g1"}
	meterE1 := Resource{Kind: KindMeter, ParkID: "p1", EnterpriseID: "e1"}
	meterE2 := Resource{Kind: KindMeter, ParkID: "p1", EnterpriseID: "e2"}
	parkMeter := Resource{Kind: KindMeter, ParkID: "p1"}
	park1 := Resource{Kind: KindPark, ParkID: "p1"}
	park2 := Resource{Kind: KindPark, ParkID: "p2"}
	tests := []struct {
		name string
		p    *Principal
		a    Access
		r    Resource
		want error
	}{
		{"nobody", nil, Read, park1, ErrUnauthenticated},
		{"admin creates park", admin, Admin, park2, nil},
		{"admin issues token", admin, Admin, Resource{Kind: KindToken}, nil},
		{"operator reads own park", op, Read, park1, nil},
		{"operator writes own meter", op, Write, meterE2, nil},
		{"operator reads other park", op, Read, park2, ErrPermissionDenied},
		{"operator writes other park", op, Write, Resource{Kind: KindMeter, ParkID: "p2"}, ErrPermissionDenied},
		{"operator creates park", op, Admin, park1, ErrPermissionDenied},
		{"operator issues token", op, Write, Resource{Kind: KindToken, ParkID: "p1"}, ErrPermissionDenied},
		{"operator reads factor sets", op, Read, Resource{Kind: KindGlobal}, nil},
		{"operator writes factor sets", op, Write, Resource{Kind: KindGlobal}, ErrPermissionDenied},
		{"auditor reads both parks", aud, Read, park2, nil},
		{"auditor writes", aud, Write, park1, ErrPermissionDenied},
		{"enterprise reads its park", ent, Read, park1, nil},
		{"enterprise reads own meter", ent, Read, meterE1, nil},
		{"enterprise reads other enterprise's meter", ent, Read, meterE2, ErrPermissionDenied},
		{"enterprise reads park-level meter", ent, Read, parkMeter, ErrPermissionDenied},
		{"enterprise writes own meter", ent, Write, meterE1, ErrPermissionDenied},
		{"enterprise lists gateways", ent, Read, Resource{Kind: KindGateway, ParkID: "p1"}, ErrPermissionDenied},
		{"gateway reads park", gw, Read, park1, ErrPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Authorize(tt.a, tt.r)
			if tt.want == nil && err != nil || tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("Authorize = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPrincipalValidate(t *testing.T) {
	tests := []struct {
		p  Principal
		ok bool
	}{
		{Principal{Role: RoleAdmin}, true},
		{Principal{Role: RoleAdmin, ParkIDs: []string{"p1"}}, false},
		{Principal{Role: RoleOperator}, false},
		{Principal{Role: RoleOperator, ParkIDs: []string{"p1", "p2"}}, true},
		{Principal{Role: RoleAuditor, ParkIDs: []string{"p1"}, EnterpriseID: "e1"}, false},
		{Principal{Role: RoleEnterprise, ParkIDs: []string{"p1"}}, false},
		{Principal{Role: RoleEnterprise, ParkIDs: []string{"p1"}, EnterpriseID: "e1"}, true},
		{Principal{Role: RoleGateway, ParkIDs: []string{"p1"}, GatewayID: "g1"}, true},
		{Principal{Role: "root"}, false},
	}
	for _, tt := range tests {
		if err := tt.p.Validate(); (err == nil) != tt.ok {
			t.Errorf("%+v: Validate() = %v, want ok=%v", tt.p, err, tt.ok)
		}
	}
}

type tokenMap map[string]*Principal

func (m tokenMap) LookupToken(_ context.Context, hash string) (*Principal, error) {
	if p, ok := m[hash]; ok {
		return p, nil
	}
	return nil, ErrUnauthenticated
}

func TestAuthenticate(t *testing.T) {
	secret, err := NewToken()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "pct_") || len(secret) < 40 {
		t.Fatalf("token %q: want pct_ prefix and 256 random bits", secret)
	}
	other, _ := NewToken()
	if other == secret {
		t.Fatal("two tokens are equal")
	}
	a := &Authenticator{Tokens: tokenMap{Hash(secret): {TokenID: "t1", Role: RoleAdmin}}}
	for _, tt := range []struct {
		header string
		ok     bool
	}{
		{"Bearer " + secret, true},
		{"bearer   " + secret + " ", true},
		{"", false},
		{"Basic " + secret, false},
		{"Bearer", false},
		{"Bearer " + other, false},
		{secret, false},
	} {
		p, err := a.Authenticate(context.Background(), tt.header)
		if tt.ok != (err == nil) {
			t.Errorf("Authenticate(%q) = %v, %v; want ok=%v", tt.header, p, err, tt.ok)
		}
		if !tt.ok && !errors.Is(err, ErrUnauthenticated) {
			t.Errorf("Authenticate(%q) error %v is not ErrUnauthenticated", tt.header, err)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$7$101$") {
		t.Fatalf("hash %q is not in Mosquitto's $7$ format", h)
	}
	if !VerifyPassword("s3cret", h) || VerifyPassword("s3cret!", h) || VerifyPassword("s3cret", "garbage") {
		t.Fatal("VerifyPassword accepts or refuses the wrong password")
	}
	h2, _ := HashPassword("s3cret")
	if h == h2 {
		t.Fatal("hashes of one password are equal: the salt is not random")
	}
}

// TestVerifyMosquittoPasswd checks VerifyPassword against a file written by mosquitto_passwd,
// so the embedded and the external broker accept the same credentials.
func TestVerifyMosquittoPasswd(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_passwd")
	if err != nil {
		t.Fatal("mosquitto_passwd not found: run deploy/local/install.sh (make deps)")
	}
	file := filepath.Join(t.TempDir(), "passwd")
	if out, err := exec.Command(bin, "-b", "-c", file, "gw-01", "pa55word").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, hash, _ := strings.Cut(strings.TrimSpace(string(b)), ":")
	if !VerifyPassword("pa55word", hash) {
		t.Fatalf("VerifyPassword refuses mosquitto_passwd's hash %q", hash)
	}
	if VerifyPassword("wrong", hash) {
		t.Fatal("VerifyPassword accepts a wrong password")
	}
}
