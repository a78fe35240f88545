package notify

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

// WebhookVersion is the "version" of the webhook body. It changes only when a field is removed
// or changes meaning; new fields may be added without a new version.
const WebhookVersion = "1"

// Message is what an endpoint is told.
type Message struct {
	// Event is an alerting event kind: firing, resolved or flapping.
	Event string
	Alert alerting.Alert
	// RuleName is the rule's human name (the rule id when empty).
	RuleName string
	// ParkID is the park of the alert (Alert.ParkID when empty).
	ParkID string
	// SentAt is when the notification was issued; Enqueue sets it when zero. It is the same
	// across retries.
	SentAt time.Time
	// Summary says what was seen, for people (Alert.Summary when empty).
	Summary string
}

// MessageFor is the message of an event of rule r.
func MessageFor(r alerting.Rule, ev alerting.Event) Message {
	return Message{Event: ev.Kind, Alert: ev.Alert, RuleName: r.Name, ParkID: r.ParkID, Summary: ev.Alert.Summary}
}

func (m Message) park() string {
	if m.ParkID != "" {
		return m.ParkID
	}
	return m.Alert.ParkID
}

func (m Message) ruleName() string {
	if m.RuleName != "" {
		return m.RuleName
	}
	return m.Alert.RuleID
}

func (m Message) summary() string {
	if m.Summary != "" {
		return m.Summary
	}
	return m.Alert.Summary
}

// webhookBody is the JSON body of a webhook POST, version 1:
//
//	{
//	  "version":     "1",
//	  "event":       "firing" | "resolved" | "flapping",
//	  "park_id":     string,
//	  "rule_id":     string,
//	  "rule_name":   string,
//	  "alert_id":    string,   // stable across restarts; dedupe and correlate on it
//	  "state":       "pending" | "firing" | "resolved",
//	  "severity":    "info" | "warning" | "critical",
//	  "labels":      {string: string},   // always an object, possibly empty
//	  "value":       number | null,      // null when the value is not a finite number
//	  "summary":     string,
//	  "fired_at":    RFC 3339 UTC | null, // null when the alert never fired
//	  "resolved_at": RFC 3339 UTC | null, // set only while the alert is resolved
//	  "acked_by":    string,             // "" when not acknowledged
//	  "sent_at":     RFC 3339 UTC
//	}
//
// Every field is always present.
type webhookBody struct {
	Version    string            `json:"version"`
	Event      string            `json:"event"`
	ParkID     string            `json:"park_id"`
	RuleID     string            `json:"rule_id"`
	RuleName   string            `json:"rule_name"`
	AlertID    string            `json:"alert_id"`
	State      string            `json:"state"`
	Severity   string            `json:"severity"`
	Labels     map[string]string `json:"labels"`
	Value      *float64          `json:"value"`
	Summary    string            `json:"summary"`
	FiredAt    *string           `json:"fired_at"`
	ResolvedAt *string           `json:"resolved_at"`
	AckedBy    string            `json:"acked_by"`
	SentAt     string            `json:"sent_at"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := rfc3339(t)
	return &s
}

// WebhookBody is the JSON body posted to webhooks for m; its shape is documented on
// webhookBody and stable within a WebhookVersion.
func WebhookBody(m Message) ([]byte, error) {
	a := m.Alert
	labels := a.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	var value *float64
	if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
		v := a.Value
		value = &v
	}
	var resolved *string
	if a.State == alerting.StateResolved {
		resolved = optTime(a.ResolvedAt)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // summaries hold "<" and ">"; receivers need not unescape them
	err := enc.Encode(webhookBody{
		Version:    WebhookVersion,
		Event:      m.Event,
		ParkID:     m.park(),
		RuleID:     a.RuleID,
		RuleName:   m.ruleName(),
		AlertID:    a.ID,
		State:      a.State,
		Severity:   a.Severity,
		Labels:     labels,
		Value:      value,
		Summary:    m.summary(),
		FiredAt:    optTime(a.FiredAt),
		ResolvedAt: resolved,
		AckedBy:    a.AckedBy,
		SentAt:     rfc3339(m.SentAt),
	})
	if err != nil {
		return nil, fmt.Errorf("encode webhook body of alert %s: %w", a.ID, err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// signaturePrefix starts every X-Parkcarbon-Signature value.
const signaturePrefix = "sha256="

// Sign is the X-Parkcarbon-Signature of body: "sha256=" and the hex HMAC-SHA256 of body keyed
// with the endpoint's secret.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether header is the signature of body under secret, comparing in constant
// time. Receivers call it with the raw request body before decoding it.
func Verify(secret string, body []byte, header string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(header))
}
