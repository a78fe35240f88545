package notify

import (
	"bytes"
	"encoding/json"
	"flag"
	"math"
	"mime"
	"net/http"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestWebhookBodyRoundTrip(t *testing.T) {
	documented := []string{"version", "event", "park_id", "rule_id", "rule_name", "alert_id", "state", "severity",
		"labels", "value", "summary", "fired_at", "resolved_at", "acked_by", "sent_at"}

	resolved := testMessage(alerting.EventResolved)
	resolved.Alert.State = alerting.StateResolved
	resolved.Alert.ResolvedAt = t0.Add(10 * time.Minute)
	acked := testMessage(alerting.EventFiring)
	acked.Alert.AckedBy = "operator1"
	noValue := testMessage(alerting.EventFiring)
	noValue.Alert.Value = math.NaN()
	noValue.Alert.Labels = nil
	fallbacks := testMessage(alerting.EventFlapping)
	fallbacks.ParkID, fallbacks.RuleName, fallbacks.Summary = "", "", ""

	for _, tc := range []struct {
		name  string
		msg   Message
		check func(t *testing.T, got map[string]any)
	}{
		{"firing", testMessage(alerting.EventFiring), func(t *testing.T, got map[string]any) {
			want := map[string]any{"version": "1", "event": "firing", "park_id": "p1", "rule_id": "r1",
				"rule_name": "Peak power", "alert_id": "al_0123456789abcdef0123", "state": "firing",
				"severity": "critical", "value": 1234.5, "summary": "meter m1 power 1234.5 kW > 1000 kW",
				"fired_at": "2026-03-14T09:30:00Z", "resolved_at": nil, "acked_by": "", "sent_at": "2026-03-14T09:30:01Z"}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s = %#v, want %#v", k, got[k], v)
				}
			}
			labels, ok := got["labels"].(map[string]any)
			if !ok || labels["meter"] != "m1" || len(labels) != 4 {
				t.Errorf("labels = %#v", got["labels"])
			}
		}},
		{"resolved", resolved, func(t *testing.T, got map[string]any) {
			if got["resolved_at"] != "2026-03-14T09:40:00Z" || got["state"] != "resolved" || got["event"] != "resolved" {
				t.Errorf("resolved_at, state, event = %v, %v, %v", got["resolved_at"], got["state"], got["event"])
			}
			ts, err := time.Parse(time.RFC3339, got["fired_at"].(string))
			if err != nil || !ts.Equal(t0) {
				t.Errorf("fired_at %v does not parse back to %v: %v", got["fired_at"], t0, err)
			}
		}},
		{"acked", acked, func(t *testing.T, got map[string]any) {
			if got["acked_by"] != "operator1" {
				t.Errorf("acked_by = %v", got["acked_by"])
			}
		}},
		{"nan value and no labels", noValue, func(t *testing.T, got map[string]any) {
			if got["value"] != nil {
				t.Errorf("value = %v, want null", got["value"])
			}
			if labels, ok := got["labels"].(map[string]any); !ok || len(labels) != 0 {
				t.Errorf("labels = %#v, want {}", got["labels"])
			}
		}},
		{"fallbacks to the alert", fallbacks, func(t *testing.T, got map[string]any) {
			if got["park_id"] != "p1" || got["rule_name"] != "r1" || got["summary"] != fallbacks.Alert.Summary {
				t.Errorf("park_id, rule_name, summary = %v, %v, %v", got["park_id"], got["rule_name"], got["summary"])
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := WebhookBody(tc.msg)
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(body, &got); err != nil {
				t.Fatalf("decode %s: %v", body, err)
			}
			keys := make([]string, 0, len(got))
			for k := range got {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			want := slices.Sorted(slices.Values(documented))
			if !slices.Equal(keys, want) {
				t.Errorf("fields %v, documented %v", keys, want)
			}
			tc.check(t, got)
		})
	}
}

// TestWebhookBodyGolden pins the exact bytes receivers see (run with -update to rewrite).
func TestWebhookBodyGolden(t *testing.T) {
	m := testMessage(alerting.EventFiring)
	m.RuleName = "高耗能企业功率超限"
	body, err := WebhookBody(m)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, body, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	path := filepath.Join("testdata", "webhook_firing.golden.json")
	if *update {
		if err := os.WriteFile(path, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("webhook body changed:\n%s\nwant:\n%s", pretty.Bytes(), want)
	}
}

func TestSignVerify(t *testing.T) {
	body := []byte(`{"version":"1"}`)
	sig := Sign(testSecret, body)
	if !strings.HasPrefix(sig, "sha256=") || len(sig) != len("sha256=")+64 {
		t.Fatalf("Sign = %q, want sha256= and 64 hex digits", sig)
	}
	// The HMAC-SHA256 example of Wikipedia.
	if got := Sign("key", []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Errorf("Sign known vector = %s", got)
	}
	for _, tc := range []struct {
		name   string
		secret string
		body   []byte
		header string
		want   bool
	}{
		{"valid", testSecret, body, sig, true},
		{"wrong secret", "another-secret-value", body, sig, false},
		{"tampered body", testSecret, []byte(`{"version":"2"}`), sig, false},
		{"no prefix", testSecret, body, strings.TrimPrefix(sig, "sha256="), false},
		{"upper case hex", testSecret, body, "sha256=" + strings.ToUpper(strings.TrimPrefix(sig, "sha256=")), false},
		{"empty header", testSecret, body, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Verify(tc.secret, tc.body, tc.header); got != tc.want {
				t.Errorf("Verify = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRetryDelay(t *testing.T) {
	for _, tc := range []struct {
		name                      string
		backoff, retryAfter, maxD time.Duration
		want                      time.Duration
	}{
		{"backoff alone", time.Second, 0, time.Minute, time.Second},
		{"retry-after longer than backoff", time.Second, 30 * time.Second, time.Minute, 30 * time.Second},
		{"retry-after shorter than backoff", 10 * time.Second, time.Second, time.Minute, 10 * time.Second},
		{"retry-after capped", time.Second, time.Hour, time.Minute, time.Minute},
		{"jittered backoff capped", 90 * time.Second, 0, time.Minute, time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryDelay(tc.backoff, tc.retryAfter, tc.maxD); got != tc.want {
				t.Errorf("retryDelay = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := t0
	for _, tc := range []struct {
		header string
		want   time.Duration
	}{
		{"", 0},
		{"120", 120 * time.Second},
		{" 5 ", 5 * time.Second},
		{"0", 0},
		{"-3", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
		{"99999999999999999999", 0},
	} {
		t.Run(tc.header, func(t *testing.T) {
			if got := parseRetryAfter(tc.header, now); got != tc.want {
				t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.header, got, tc.want)
			}
		})
	}
}

func TestEmailMessageHeaders(t *testing.T) {
	m := testMessage(alerting.EventFiring)
	m.RuleName = "evil\r\nBcc: victim@example.com"
	from := &mail.Address{Name: "园区告警", Address: "alerts@park.example"}
	raw := emailMessage(from, []string{"ops@park.example"}, m, "dl_abc", t0)
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if bcc := msg.Header.Get("Bcc"); bcc != "" {
		t.Errorf("rule name injected a Bcc header: %q", bcc)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[parkcarbon] FIRING critical: evil\r\nBcc: victim@example.com (park p1)"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	addr, err := mail.ParseAddress(msg.Header.Get("From"))
	if err != nil || addr.Name != "园区告警" {
		t.Errorf("From = %q (%v), want the UTF-8 name to survive", msg.Header.Get("From"), err)
	}
	for k, want := range map[string]string{
		"Content-Type":              "text/plain; charset=UTF-8",
		"Mime-Version":              "1.0",
		HeaderDelivery:              "dl_abc",
		HeaderEvent:                 "firing",
		"Message-Id":                "<dl_abc@park.example>",
		"To":                        "ops@park.example",
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
}
