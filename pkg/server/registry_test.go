package server

import (
	"fmt"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/parkcarbon/parkcarbon/pkg/pb/parkcarbon/v1"
	"github.com/parkcarbon/parkcarbon/pkg/store/sqlstore"
)

// problemField returns the first invalid parameter a problem+json body names.
func problemField(out map[string]any) string {
	ps, _ := out["invalid_params"].([]any)
	if len(ps) == 0 {
		return ""
	}
	return ps[0].(map[string]any)["name"].(string)
}

func TestRegistryBadInput(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := testAdminToken
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p1", "name": "Park"})
	ts.must(201, "POST", "/api/v1/parks/p1/enterprises", a, map[string]any{"id": "e1", "name": "E1"})
	ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p2", "name": "Other"})
	ts.must(201, "POST", "/api/v1/parks/p2/enterprises", a, map[string]any{"id": "e9", "name": "E9"})
	ts.must(201, "POST", "/api/v1/parks/p1/meters", a, map[string]any{"id": "m1", "carrier": "electricity", "unit": "kWh", "enterprise_id": "e1"})
	audits := func() int {
		es, err := ts.Store.ListAudit(t.Context(), sqlstore.AuditFilter{Limit: 10000})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := audits()

	big := `{"id":"big","name":"` + strings.Repeat("x", 1<<20) + `"}`
	tests := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"malformed json", "POST", "/api/v1/parks", `{"id":"p3",`, 400, "body"},
		{"not an object", "POST", "/api/v1/parks", `["p3"]`, 400, "body"},
		{"empty body", "POST", "/api/v1/parks", ``, 400, "body"},
		{"unknown field", "POST", "/api/v1/parks", `{"id":"p3","name":"P","colour":"green"}`, 400, "colour"},
		{"wrong type", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"electricity","unit":"kWh","multiplier":"eighty"}`, 400, "multiplier"},
		{"duplicate field", "POST", "/api/v1/parks", `{"id":"p3","id":"p4","name":"P"}`, 400, "id"},
		{"body over 1 MiB", "POST", "/api/v1/parks", big, 413, ""},
		{"duplicate park", "POST", "/api/v1/parks", `{"id":"p1","name":"Again"}`, 409, ""},
		{"duplicate meter", "POST", "/api/v1/parks/p1/meters", `{"id":"m1","carrier":"electricity","unit":"kWh"}`, 409, ""},
		{"bad park id", "POST", "/api/v1/parks", `{"id":"Park 3","name":"P"}`, 400, "id"},
		{"bad meter id", "POST", "/api/v1/parks/p1/meters", `{"id":"-m","carrier":"electricity","unit":"kWh"}`, 400, "id"},
		{"unit does not fit carrier", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"natural_gas","unit":"kWh"}`, 400, "unit"},
		{"unknown carrier", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"uranium","unit":"t"}`, 400, "carrier"},
		{"multiplier zero", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"electricity","unit":"kWh","multiplier":0}`, 400, "multiplier"},
		{"negative rollover", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"electricity","unit":"kWh","rollover":-1}`, 400, "rollover"},
		{"enterprise of another park", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"electricity","unit":"kWh","enterprise_id":"e9"}`, 400, "enterprise_id"},
		{"unknown gateway", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","carrier":"electricity","unit":"kWh","gateway_id":"nope"}`, 400, "gateway_id"},
		{"body names another park", "POST", "/api/v1/parks/p1/meters", `{"id":"m2","park_id":"p2","carrier":"electricity","unit":"kWh"}`, 400, "park_id"},
		{"meter in missing park", "POST", "/api/v1/parks/nope/meters", `{"id":"m2","carrier":"electricity","unit":"kWh"}`, 404, ""},
		{"bad timezone", "POST", "/api/v1/parks", `{"id":"p3","name":"P","timezone":"Mars/Base"}`, 400, "timezone"},
		{"patch unknown field", "PATCH", "/api/v1/parks/p1/meters/m1", `{"voltage":10}`, 400, "voltage"},
		{"patch invalid unit", "PATCH", "/api/v1/parks/p1/meters/m1", `{"unit":"GJ"}`, 400, "unit"},
		{"patch renames", "PATCH", "/api/v1/parks/p1/meters/m1", `{"id":"m9"}`, 400, "id"},
		{"patch nothing", "PATCH", "/api/v1/parks/p1", `{}`, 400, "body"},
		{"patch missing meter", "PATCH", "/api/v1/parks/p1/meters/nope", `{"unit":"kWh"}`, 404, ""},
		{"delete park with meters", "DELETE", "/api/v1/parks/p1", ``, 409, ""},
		{"bad cascade", "DELETE", "/api/v1/parks/p1?cascade=maybe", ``, 400, "cascade"},
		{"bad page size", "GET", "/api/v1/parks/p1/meters?page_size=-3", ``, 400, "page_size"},
		{"unknown route", "GET", "/api/v1/planets", ``, 404, ""},
		{"token with unknown role", "POST", "/api/v1/tokens", `{"role":"root"}`, 400, "role"},
		{"token for missing park", "POST", "/api/v1/tokens", `{"role":"operator","park_ids":["zz"]}`, 400, "park_ids"},
		{"enterprise token for another park's enterprise", "POST", "/api/v1/tokens", `{"role":"enterprise","park_ids":["p1"],"enterprise_id":"e9"}`, 400, "enterprise_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, hdr := ts.do(tt.method, tt.path, a, tt.body)
			if code != tt.status {
				t.Fatalf("status %d, want %d: %v", code, tt.status, out)
			}
			if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "application/problem+json") {
				t.Fatalf("content type %q, want application/problem+json", ct)
			}
			if out["status"] != float64(tt.status) || out["title"] == "" || out["detail"] == "" {
				t.Fatalf("problem body %v lacks status, title or detail", out)
			}
			if got := problemField(out); got != tt.field {
				t.Fatalf("invalid_params names %q, want %q: %v", got, tt.field, out)
			}
		})
	}
	if after := audits(); after != before {
		t.Fatalf("refused requests wrote %d audit rows", after-before)
	}
	// Nothing half-written: p1 still has exactly one meter, unchanged.
	out := ts.must(200, "GET", "/api/v1/parks/p1/meters", a, nil)
	if ms := out["meters"].([]any); len(ms) != 1 || ms[0].(map[string]any)["unit"] != "kWh" {
		t.Fatalf("meters after refused requests: %v", out)
	}
	ts.must(404, "GET", "/api/v1/parks/p3", a, nil)
	ts.must(404, "GET", "/api/v1/parks/big", a, nil)
}

func TestRegistryGRPCErrorsNameTheField(t *testing.T) {
	ts := startServer(t, testConfig(t))
	ctx := withToken(testAdminToken)
	_, err := ts.reg.CreatePark(ctx, &pb.CreateParkRequest{Park: &pb.Park{Id: "BAD ID", Name: "x"}})
	st := status.Convert(err)
	if st.Code() != codes.InvalidArgument {
		t.Fatalf("code %v, want InvalidArgument", st.Code())
	}
	var field string
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			field = br.GetFieldViolations()[0].GetField()
		}
	}
	if field != "id" {
		t.Fatalf("details %v do not name field id", st.Details())
	}
	if _, err := ts.reg.GetPark(ctx, &pb.GetParkRequest{ParkId: "nope"}); status.Code(err) != codes.NotFound {
		t.Fatalf("GetPark(nope) = %v, want NotFound", err)
	}
}

func TestRegistryLifecycle(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := testAdminToken
	park := ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": "p1", "name": "湘潭经开区", "province": "Hunan"})
	if park["timezone"] != "Asia/Shanghai" {
		t.Fatalf("default timezone: %v", park)
	}
	ts.must(201, "POST", "/api/v1/parks/p1/enterprises", a, map[string]any{"id": "e1", "name": "E1", "key_energy_user": true, "credit_code": "91430300MA4L1234X5"})
	gw := ts.must(201, "POST", "/api/v1/parks/p1/gateways", a, map[string]any{"id": "gw-01", "name": "Gateway"})
	if pw, _ := gw["password"].(string); len(pw) < 40 {
		t.Fatalf("gateway create response carries no password: %v", gw)
	}
	gws := ts.must(200, "GET", "/api/v1/parks/p1/gateways", a, nil)
	if g := gws["gateways"].([]any)[0].(map[string]any); g["password"] != "" {
		t.Fatalf("gateway list leaks the password: %v", g)
	}
	m := ts.must(201, "POST", "/api/v1/parks/p1/meters", a, map[string]any{
		"id": "e1-grid", "enterprise_id": "e1", "carrier": "electricity", "unit": "kWh", "gateway_id": "gw-01", "rollover": 1e8})
	want := map[string]any{"park_id": "p1", "direction": "in", "kind": "counter", "multiplier": 1.0, "green_class": "none", "interval_seconds": 900.0, "rollover": 1e8}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("meter %s = %v, want %v", k, m[k], v)
		}
	}
	// PATCH changes only the named fields; null clears an optional field.
	ts.must(200, "PATCH", "/api/v1/parks/p1/meters/e1-grid", a, map[string]any{"multiplier": 80, "rated_capacity": 5000})
	m = ts.must(200, "PATCH", "/api/v1/parks/p1/meters/e1-grid", a, `{"interval_seconds":60,"rated_capacity":null}`)
	if m["multiplier"] != 80.0 || m["interval_seconds"] != 60.0 || m["gateway_id"] != "gw-01" || m["rated_capacity"] != nil {
		t.Fatalf("after patches: %v", m)
	}
	// Pagination follows next_page_token to the end.
	for i := range 5 {
		ts.must(201, "POST", "/api/v1/parks/p1/meters", a, map[string]any{"id": fmt.Sprintf("m%d", i), "carrier": "heat", "unit": "GJ"})
	}
	var seen []string
	for tok := ""; ; {
		out := ts.must(200, "GET", "/api/v1/parks/p1/meters?page_size=2&page_token="+tok, a, nil)
		for _, it := range out["meters"].([]any) {
			seen = append(seen, it.(map[string]any)["id"].(string))
		}
		if tok, _ = out["next_page_token"].(string); tok == "" {
			break
		}
	}
	if len(seen) != 6 {
		t.Fatalf("pages gave %v, want 6 meters", seen)
	}
	// Delete: refused while the park has meters, done with cascade.
	ts.must(409, "DELETE", "/api/v1/parks/p1", a, nil)
	ts.must(204, "DELETE", "/api/v1/parks/p1?cascade=true", a, nil)
	ts.must(404, "GET", "/api/v1/parks/p1", a, nil)
	ts.must(404, "GET", "/api/v1/parks/p1/meters/e1-grid", a, nil)

	// Every write left an audit row naming the admin.
	entries, err := ts.Store.ListAudit(t.Context(), sqlstore.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	actions := map[string]int{}
	for _, e := range entries {
		actions[e.Action]++
		if e.Action == "token.create" && e.Actor == "system" {
			continue // the bootstrap admin token, stored at start-up
		}
		if !strings.Contains(e.Actor, "admin") {
			t.Errorf("audit row %s by %q, want the admin token", e.Action, e.Actor)
		}
		if strings.Contains(string(e.Before)+string(e.After), "$7$") {
			t.Errorf("audit row %s contains a password hash", e.Action)
		}
	}
	for action, n := range map[string]int{"park.create": 1, "enterprise.create": 1, "gateway.create": 1, "meter.create": 6, "meter.update": 2, "park.delete": 1} {
		if actions[action] < n {
			t.Errorf("audit has %d %s rows, want at least %d (all: %v)", actions[action], action, n, actions)
		}
	}
}
