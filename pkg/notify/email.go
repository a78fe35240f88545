package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/alerting"
)

// SMTPConfig is the mail server email endpoints are sent through.
type SMTPConfig struct {
	// Addr is host:port; empty: email deliveries fail with ErrNoSMTP.
	Addr string
	// From is the sender, "alerts@example.com" or "Park Alerts <alerts@example.com>".
	From string
	// Username and Password, when Username is set, authenticate with PLAIN (which net/smtp
	// only sends over TLS or to localhost).
	Username string
	Password string
	// Timeout bounds one attempt, connection to QUIT (DefaultSMTPTimeout).
	Timeout time.Duration
}

// Validate checks a configured SMTP server; an empty Addr (email disabled) is valid.
func (c SMTPConfig) Validate() error {
	if c.Addr == "" {
		return nil
	}
	if host, port, err := net.SplitHostPort(c.Addr); err != nil || host == "" || port == "" {
		return fmt.Errorf("smtp address %q is not host:port", c.Addr)
	}
	if _, err := mail.ParseAddress(c.From); err != nil {
		return fmt.Errorf("smtp from %q is not an email address: %w", c.From, err)
	}
	return nil
}

// sendEmail makes one email attempt. SMTP 4xx replies and connection errors are retried; 5xx
// replies and configuration errors are permanent.
func (d *Dispatcher) sendEmail(ctx context.Context, j *job) result {
	cfg := d.smtp
	if cfg.Addr == "" {
		return permanent("", fmt.Errorf("email endpoint %s: %w", j.ep.ID, ErrNoSMTP))
	}
	if err := cfg.Validate(); err != nil {
		return permanent("", fmt.Errorf("email endpoint %s: %w", j.ep.ID, err))
	}
	if len(j.ep.To) == 0 {
		return permanent("", fmt.Errorf("email endpoint %s has no addresses", j.ep.ID))
	}
	for _, to := range j.ep.To {
		if strings.ContainsAny(to, "\r\n<>,") {
			return permanent("", fmt.Errorf("email endpoint %s: %q is not an email address", j.ep.ID, to))
		}
	}
	from, _ := mail.ParseAddress(cfg.From) // checked by Validate
	host, _, _ := net.SplitHostPort(cfg.Addr)
	data := emailMessage(from, j.ep.To, j.msg, j.id, d.now())
	if err := sendMail(ctx, cfg, host, from.Address, j.ep.To, data); err != nil {
		return smtpResult(fmt.Errorf("email endpoint %s via %s: %w", j.ep.ID, cfg.Addr, err))
	}
	return result{status: "250"}
}

// sendMail is smtp.SendMail bounded by ctx and cfg.Timeout.
func sendMail(ctx context.Context, cfg SMTPConfig, host, from string, to []string, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	for _, addr := range to {
		if err := c.Rcpt(addr); err != nil {
			return fmt.Errorf("rcpt to %s: %w", addr, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	_ = c.Quit() // the message is accepted; a failed QUIT changes nothing
	return nil
}

// smtpResult classifies a failed send: a 4xx reply or a broken connection is temporary.
func smtpResult(err error) result {
	var tpErr *textproto.Error
	if errors.As(err, &tpErr) {
		status := strconv.Itoa(tpErr.Code)
		if tpErr.Code >= 400 && tpErr.Code < 500 {
			return temporary(status, err)
		}
		return permanent(status, err)
	}
	var netErr net.Error
	if errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, net.ErrClosed) {
		return temporary("", err)
	}
	return permanent("", err)
}

// EmailSubject is the subject of m, e.g. "[parkcarbon] FIRING critical: 高耗能 (park p1)".
func EmailSubject(m Message) string {
	return fmt.Sprintf("[parkcarbon] %s %s: %s (park %s)", strings.ToUpper(m.Event), m.Alert.Severity, m.ruleName(), m.park())
}

// emailBody is the plain-text body of m.
func emailBody(m Message) string {
	a := m.Alert
	or := func(s, def string) string {
		if s == "" {
			return def
		}
		return s
	}
	at := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		return rfc3339(t)
	}
	value := "-"
	if !math.IsNaN(a.Value) && !math.IsInf(a.Value, 0) {
		value = strconv.FormatFloat(a.Value, 'g', -1, 64)
	}
	keys := make([]string, 0, len(a.Labels))
	for k := range a.Labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	labels := make([]string, len(keys))
	for i, k := range keys {
		labels[i] = k + "=" + a.Labels[k]
	}
	resolved := "-"
	if a.State == alerting.StateResolved {
		resolved = at(a.ResolvedAt)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\n", or(m.summary(), EmailSubject(m)))
	rows := [][2]string{
		{"Event", m.Event},
		{"Park", m.park()},
		{"Rule", m.ruleName() + " (" + a.RuleID + ")"},
		{"Alert", a.ID},
		{"State", a.State},
		{"Severity", a.Severity},
		{"Value", value},
		{"Labels", or(strings.Join(labels, ", "), "-")},
		{"Fired at", at(a.FiredAt)},
		{"Resolved at", resolved},
		{"Acknowledged by", or(a.AckedBy, "-")},
		{"Sent at", at(m.SentAt)},
	}
	for _, r := range rows {
		fmt.Fprintf(&b, "%-16s %s\n", r[0]+":", r[1])
	}
	return b.String()
}

// headerValue keeps a header value on one line.
func headerValue(s string) string {
	return strings.NewReplacer("\r", " ", "\n", " ").Replace(s)
}

// emailMessage is the RFC 5322 message of m: UTF-8 plain text, quoted-printable, the subject
// Q-encoded.
func emailMessage(from *mail.Address, to []string, m Message, id string, now time.Time) []byte {
	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("From", from.String())
	header("To", headerValue(strings.Join(to, ", ")))
	header("Subject", mime.QEncoding.Encode("UTF-8", EmailSubject(m)))
	header("Date", now.Format(time.RFC1123Z))
	domain := "parkcarbon"
	if i := strings.LastIndexByte(from.Address, '@'); i >= 0 {
		domain = from.Address[i+1:]
	}
	header("Message-ID", "<"+id+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=UTF-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header(HeaderEvent, headerValue(m.Event))
	header(HeaderDelivery, id)
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	_, _ = qp.Write([]byte(emailBody(m))) // writes to a bytes.Buffer do not fail
	_ = qp.Close()
	return b.Bytes()
}
