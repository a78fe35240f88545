package alerting

import (
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Matcher selects alerts by one label: equal to Value, or matching it as a regular
// expression (anchored) when Regex is set.
type Matcher struct {
	Name  string `json:"name"`
	Value string `json:"value"`
	Regex bool   `json:"regex,omitempty"`
}

// Silence mutes the notifications of the alerts all its matchers select, from StartsAt until
// EndsAt. Alerts keep their state; only notifications stop.
type Silence struct {
	ID        string    `json:"id"`
	ParkID    string    `json:"park_id"`
	Matchers  []Matcher `json:"matchers"`
	StartsAt  time.Time `json:"starts_at"`
	EndsAt    time.Time `json:"ends_at"`
	CreatedBy string    `json:"created_by"`
	Comment   string    `json:"comment"`
}

// maxSilence bounds a silence: a forgotten silence should not hide a park for ever.
const maxSilence = 90 * 24 * time.Hour

// Validate checks a silence.
func (s Silence) Validate() error {
	if len(s.Matchers) == 0 {
		return invalid("matchers", "at least one matcher is required")
	}
	for _, m := range s.Matchers {
		if !labelName.MatchString(m.Name) {
			return invalid("matchers", "label name %q does not match %s", m.Name, labelName)
		}
		if m.Regex {
			if _, err := regexp.Compile("^(?:" + m.Value + ")$"); err != nil {
				return invalid("matchers", "%s: %v", m.Name, err)
			}
		}
	}
	switch {
	case s.StartsAt.IsZero() || s.EndsAt.IsZero():
		return invalid("ends_at", "starts_at and ends_at are required")
	case !s.EndsAt.After(s.StartsAt):
		return invalid("ends_at", "is not after starts_at")
	case s.EndsAt.Sub(s.StartsAt) > maxSilence:
		return invalid("ends_at", "a silence lasts at most %v", maxSilence)
	case strings.TrimSpace(s.Comment) == "":
		return invalid("comment", "say why the alerts are silenced")
	}
	return nil
}

// Active reports whether the silence is in force at now.
func (s Silence) Active(now time.Time) bool { return !now.Before(s.StartsAt) && now.Before(s.EndsAt) }

// Matches reports whether every matcher selects labels.
func (s Silence) Matches(labels map[string]string) bool {
	for _, m := range s.Matchers {
		v := labels[m.Name]
		if m.Regex {
			re, err := regexp.Compile("^(?:" + m.Value + ")$")
			if err != nil || !re.MatchString(v) {
				return false
			}
		} else if v != m.Value {
			return false
		}
	}
	return true
}

// Silenced reports whether any active silence mutes an alert with labels.
func Silenced(silences []Silence, labels map[string]string, now time.Time) bool {
	for _, s := range silences {
		if s.Active(now) && s.Matches(labels) {
			return true
		}
	}
	return false
}

// AlertLabels are the labels of an alert: the observation's, the rule's, and rule, severity and
// park, which silences and routes can match.
func AlertLabels(r Rule, obs map[string]string) map[string]string {
	out := make(map[string]string, len(obs)+len(r.Labels)+3)
	for k, v := range r.Labels {
		out[k] = v
	}
	for k, v := range obs {
		out[k] = v
	}
	out["rule"], out["severity"], out["park"] = r.ID, r.Severity, r.ParkID
	return out
}

// Endpoint kinds.
const (
	EndpointWebhook = "webhook"
	EndpointEmail   = "email"
)

// Endpoint is where notifications go: a webhook (JSON POST signed with Secret) or email.
type Endpoint struct {
	ID     string `json:"id"`
	ParkID string `json:"park_id"`
	Kind   string `json:"kind"`
	// URL of a webhook.
	URL string `json:"url,omitempty"`
	// Secret signs webhook bodies (X-Parkcarbon-Signature: sha256=HMAC-SHA256 hex).
	Secret string `json:"secret,omitempty"`
	// To are the addresses of an email endpoint.
	To []string `json:"to,omitempty"`
}

// Validate checks an endpoint.
func (e Endpoint) Validate() error {
	if err := registry.CheckID("id", e.ID); err != nil {
		return err
	}
	switch e.Kind {
	case EndpointWebhook:
		u, err := url.Parse(e.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return invalid("url", "%q is not an http(s) URL", e.URL)
		}
		if len(e.Secret) < 16 {
			return invalid("secret", "must be at least 16 characters")
		}
	case EndpointEmail:
		if len(e.To) == 0 {
			return invalid("to", "at least one address is required")
		}
		for _, a := range e.To {
			if i := strings.IndexByte(a, '@'); i <= 0 || i == len(a)-1 || strings.ContainsAny(a, " \r\n<>,") {
				return invalid("to", "%q is not an email address", a)
			}
		}
	default:
		return invalid("kind", "%q is not webhook or email", e.Kind)
	}
	return nil
}
