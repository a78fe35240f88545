package notify

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/textproto"
	"slices"
	"strings"
	"testing"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

const chineseRule = "高耗能企业功率超限"

func emailEndpoint() alerting.Endpoint {
	return alerting.Endpoint{ID: "mail1", ParkID: "p1", Kind: alerting.EndpointEmail,
		To: []string{"ops@park.example", "energy@park.example"}}
}

// decodeMail returns the decoded subject and body of a received message.
func decodeMail(t *testing.T, m receivedMail) (*mail.Message, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.data))
	if err != nil {
		t.Fatalf("parse mail: %v\n%s", err, m.data)
	}
	raw := msg.Header.Get("Subject")
	for _, r := range raw {
		if r > 127 {
			t.Errorf("raw Subject %q is not ASCII: it must be MIME-encoded", raw)
			break
		}
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(raw)
	if err != nil {
		t.Fatalf("decode subject %q: %v", raw, err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	return msg, subject, string(body)
}

func TestEmailDelivered(t *testing.T) {
	srv := newSMTPServer(t, 0)
	f := newFixture(t, Options{SMTP: SMTPConfig{Addr: srv.addr(), From: "Park Alerts <alerts@park.example>"}})
	f.d.Start(t.Context())
	m := testMessage(alerting.EventFiring)
	m.RuleName = chineseRule
	m.Summary = "电表 m1 功率 1234.5 kW 超过 1000 kW"
	if !f.d.Enqueue(emailEndpoint(), m) {
		t.Fatal("Enqueue refused")
	}
	eventually(t, "the email", func() bool { return f.outcome(t, "email", outcomeDelivered) == 1 })

	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("server received %d mails, want 1", len(mails))
	}
	got := mails[0]
	if got.from != "alerts@park.example" || !slices.Equal(got.to, emailEndpoint().To) {
		t.Errorf("envelope from %q to %v", got.from, got.to)
	}
	msg, subject, body := decodeMail(t, got)
	if want := "[parkcarbon] FIRING critical: " + chineseRule + " (park p1)"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	if ct := msg.Header.Get("Content-Type"); ct != "text/plain; charset=UTF-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	for _, want := range []string{chineseRule + " (r1)", m.Summary, "al_0123456789abcdef0123", "critical", "1234.5",
		"meter=m1", "2026-03-14T09:30:00Z"} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	ds := f.log.all()
	if len(ds) != 1 || !ds[0].OK || ds[0].Status != "250" || ds[0].EndpointID != "mail1" {
		t.Errorf("deliveries %+v", ds)
	}
}

func TestEmailRetriesTemporaryFailure(t *testing.T) {
	srv := newSMTPServer(t, 1) // 451 to the first MAIL FROM
	f := newFixture(t, Options{SMTP: SMTPConfig{Addr: srv.addr(), From: "alerts@park.example"}})
	f.d.Start(t.Context())
	m := testMessage(alerting.EventResolved)
	m.RuleName = chineseRule
	f.d.Enqueue(emailEndpoint(), m)
	eventually(t, "the email", func() bool { return f.outcome(t, "email", outcomeDelivered) == 1 })

	ds := f.log.all()
	if len(ds) != 2 {
		t.Fatalf("recorded %d attempts, want 2: %+v", len(ds), ds)
	}
	if ds[0].OK || ds[0].Status != "451" || !strings.Contains(ds[0].Error, "try again later") || ds[0].Attempt != 1 {
		t.Errorf("first attempt %+v, want a 451", ds[0])
	}
	if !ds[1].OK || ds[1].Attempt != 2 {
		t.Errorf("second attempt %+v, want delivered", ds[1])
	}
	mails := srv.received()
	if len(mails) != 1 {
		t.Fatalf("server received %d mails, want 1", len(mails))
	}
	if _, subject, _ := decodeMail(t, mails[0]); !strings.HasPrefix(subject, "[parkcarbon] RESOLVED critical: "+chineseRule) {
		t.Errorf("subject = %q", subject)
	}
}

func TestEmailPermanentFailure(t *testing.T) {
	for _, tc := range []struct {
		name string
		smtp func(t *testing.T) SMTPConfig
		want string
	}{
		{"no smtp server", func(*testing.T) SMTPConfig { return SMTPConfig{} }, ErrNoSMTP.Error()},
		{"bad from", func(t *testing.T) SMTPConfig {
			return SMTPConfig{Addr: newSMTPServer(t, 0).addr(), From: "not an address"}
		}, "smtp from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{SMTP: tc.smtp(t)})
			f.d.Start(t.Context())
			f.d.Enqueue(emailEndpoint(), testMessage(alerting.EventFiring))
			eventually(t, "the failure", func() bool { return f.outcome(t, "email", outcomeFailed) == 1 })
			ds := f.log.all()
			if len(ds) != 1 || ds[0].OK || !strings.Contains(ds[0].Error, tc.want) {
				t.Errorf("deliveries %+v, want one attempt failing with %q", ds, tc.want)
			}
		})
	}
}

func TestSMTPResultClassification(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   error
		retry bool
	}{
		{"451 reply", fmt.Errorf("mail from: %w", &textproto.Error{Code: 451, Msg: "try later"}), true},
		{"550 reply", fmt.Errorf("rcpt to: %w", &textproto.Error{Code: 550, Msg: "no such user"}), false},
		{"connection closed", fmt.Errorf("data: %w", io.EOF), true},
		{"network", &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, true},
		{"plain error", errors.New("unencrypted connection"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := smtpResult(tc.err); got.retry != tc.retry {
				t.Errorf("retry = %v, want %v", got.retry, tc.retry)
			}
		})
	}
}
