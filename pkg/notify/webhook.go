package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook request headers.
const (
	HeaderSignature = "X-Parkcarbon-Signature"
	HeaderEvent     = "X-Parkcarbon-Event"
	HeaderDelivery  = "X-Parkcarbon-Delivery"
	userAgent       = "parkcarbon"
)

// maxErrorBody is how much of a failed response's body goes into the delivery error.
const maxErrorBody = 256

// postWebhook makes one webhook attempt: 2xx is delivered; 5xx, 429 and transport errors
// (timeouts, refused connections) are retried; any other status is permanent.
func (d *Dispatcher) postWebhook(ctx context.Context, j *job) result {
	body, err := WebhookBody(j.msg)
	if err != nil {
		return permanent("", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.ep.URL, bytes.NewReader(body))
	if err != nil {
		return permanent("", fmt.Errorf("webhook %s: %w", j.ep.ID, err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set(HeaderSignature, Sign(j.ep.Secret, body))
	req.Header.Set(HeaderEvent, j.msg.Event)
	req.Header.Set(HeaderDelivery, j.id)
	resp, err := d.client.Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			uerr.URL = redactURL(req.URL) // the delivery log is shown to people; keep tokens out
		}
		return temporary("", fmt.Errorf("webhook %s: %w", j.ep.ID, err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	status := strconv.Itoa(resp.StatusCode)
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return result{status: status}
	}
	err = fmt.Errorf("webhook %s: %s%s", j.ep.ID, resp.Status, bodyDetail(snippet))
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		res := temporary(status, err)
		res.retryAfter = parseRetryAfter(resp.Header.Get("Retry-After"), d.now())
		return res
	}
	return permanent(status, err)
}

// redactURL is u without credentials, query or fragment.
func redactURL(u *url.URL) string {
	r := url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}
	return r.String()
}

// bodyDetail is a response body fit for an error message.
func bodyDetail(b []byte) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "")), " ")
	if s == "" {
		return ""
	}
	return ": " + s
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date. 0: absent or
// unreadable.
func parseRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		const maxSecs = int64(365 * 24 * time.Hour / time.Second)
		return time.Duration(min(secs, maxSecs)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
