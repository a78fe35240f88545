package server

import (
	"fmt"
	"strings"
	"testing"
)

// TestAlertingInputsRefused: bad rules, silences and endpoints are refused with the field
// named, and nothing is stored.
func TestAlertingInputsRefused(t *testing.T) {
	ts := startServer(t, testConfig(t))
	a := testAdminToken
	for _, p := range []string{"p", "q"} {
		ts.must(201, "POST", "/api/v1/parks", a, map[string]any{"id": p, "name": p})
	}
	ts.must(201, "POST", "/api/v1/parks/p/enterprises", a, map[string]any{"id": "e", "name": "E"})
	ts.must(201, "POST", "/api/v1/parks/q/meters", a, map[string]any{"id": "qm", "carrier": "electricity", "unit": "kWh"})
	rule := func(mutate func(map[string]any)) map[string]any {
		r := map[string]any{"id": "r", "name": "power", "kind": "threshold", "metric": "power", "enterprise_id": "e",
			"op": ">", "threshold": 100, "window": "5m", "severity": "warning"}
		mutate(r)
		return r
	}
	for _, c := range []struct {
		name, path string
		body       any
		code       int
		field      string
	}{
		{"unknown metric", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["metric"] = "vibes" }), 400, "metric"},
		{"unknown kind", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["kind"] = "astrology" }), 400, "kind"},
		{"meter of another park", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { delete(r, "enterprise_id"); r["meter_id"] = "qm" }), 400, "meter_id"},
		{"unknown enterprise", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["enterprise_id"] = "ghost" }), 404, "enterprise"},
		{"negative for", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["for"] = "-5m" }), 400, "for"},
		{"not a duration", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["window"] = "five minutes" }), 400, "window"},
		{"clear on the wrong side", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["clear"] = 120 }), 400, "clear"},
		{"unknown endpoint", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["endpoints"] = []string{"nowhere"} }), 400, "endpoints"},
		{"severity", "/api/v1/parks/p/alert-rules", rule(func(r map[string]any) { r["severity"] = "apocalyptic" }), 400, "severity"},
		{"webhook not http", "/api/v1/parks/p/notification-endpoints", map[string]any{"id": "x", "kind": "webhook", "url": "ftp://ops.example/x", "secret": "0123456789abcdef"}, 400, "url"},
		{"webhook javascript", "/api/v1/parks/p/notification-endpoints", map[string]any{"id": "x", "kind": "webhook", "url": "javascript:alert(1)", "secret": "0123456789abcdef"}, 400, "url"},
		{"short secret", "/api/v1/parks/p/notification-endpoints", map[string]any{"id": "x", "kind": "webhook", "url": "https://ops.example/x", "secret": "short"}, 400, "secret"},
		{"bad email", "/api/v1/parks/p/notification-endpoints", map[string]any{"id": "x", "kind": "email", "to": []string{"nobody"}}, 400, "to"},
		{"silence without matchers", "/api/v1/parks/p/silences", map[string]any{"ends_at": "2099-01-01T00:00:00Z", "comment": "x"}, 400, "matchers"},
		{"silence backwards", "/api/v1/parks/p/silences", map[string]any{"matchers": []map[string]any{{"name": "rule", "value": "r"}},
			"starts_at": "2026-12-02T00:00:00Z", "ends_at": "2026-12-01T00:00:00Z", "comment": "x"}, 400, "ends_at"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, out, _ := ts.do("POST", c.path, a, c.body)
			if code != c.code || !strings.Contains(fmt.Sprint(out), c.field) {
				t.Fatalf("status %d, want %d naming %q: %v", code, c.code, c.field, out)
			}
		})
	}
	if rules := ts.must(200, "GET", "/api/v1/parks/p/alert-rules", a, nil)["rules"]; rules != nil && len(rules.([]any)) != 0 {
		t.Fatalf("refused rules stored: %v", rules)
	}
	// A valid endpoint's secret is write-only.
	ep := ts.must(201, "POST", "/api/v1/parks/p/notification-endpoints", a, map[string]any{"id": "ops", "kind": "webhook", "url": "https://ops.example/x", "secret": "0123456789abcdef"})
	list := ts.must(200, "GET", "/api/v1/parks/p/notification-endpoints", a, nil)
	if strings.Contains(fmt.Sprint(ep, list), "0123456789abcdef") {
		t.Fatalf("endpoint secret returned: %v %v", ep, list)
	}
}
