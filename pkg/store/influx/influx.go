// Package influx is parkcarbon's time-series store: it writes meter readings to InfluxDB
// through the v2 API (InfluxDB 1.8 with flux-enabled, or 2.x) and holds every query the
// platform runs against it, so a later backend is a contained change.
package influx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	influxdb2 "github.com/influxdata/influxdb-client-go/v2"
	"github.com/influxdata/influxdb-client-go/v2/api"
	ihttp "github.com/influxdata/influxdb-client-go/v2/api/http"
)

// Measurement of raw meter readings.
const Measurement = "readings"

// Point is one reading as stored: tags park, enterprise, meter, carrier; field value; the
// reading's own timestamp (millisecond precision).
type Point struct {
	Park       string
	Enterprise string
	Meter      string
	Carrier    string
	TS         time.Time
	Value      float64
}

// Options configure the connection.
type Options struct {
	URL    string
	Token  string // InfluxDB 2.x token, or "user:password" on 1.8 with auth
	Org    string
	Bucket string // on 1.8: database/retention-policy
	// Timeout of one HTTP request; default 30s.
	Timeout time.Duration
}

// Store writes and queries readings.
type Store struct {
	client influxdb2.Client
	write  api.WriteAPIBlocking
	org    string
	bucket string
}

// queries returns a query API for one query. The client library's query API fills in its URL
// on first use without a lock, a data race when queries run concurrently; its objects are
// cheap, so each query gets its own.
func (s *Store) queries() api.QueryAPI { return s.client.QueryAPI(s.org) }

// New returns a Store; it does not contact the server.
func New(opts Options) *Store {
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	o := influxdb2.DefaultOptions().
		SetPrecision(time.Millisecond).
		SetHTTPRequestTimeout(uint(opts.Timeout / time.Second)).
		SetMaxRetries(0)
	c := influxdb2.NewClientWithOptions(opts.URL, opts.Token, o)
	return &Store{client: c, write: c.WriteAPIBlocking(opts.Org, opts.Bucket), org: opts.Org, bucket: opts.Bucket}
}

// Close releases the HTTP client.
func (s *Store) Close() { s.client.Close() }

// Ping reports whether the server answers.
func (s *Store) Ping(ctx context.Context) error {
	ok, err := s.client.Ping(ctx)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("not ready")
	}
	return nil
}

// RejectedError reports points the server refused for themselves (a partial write): the rest
// of the write was stored. Retrying the rejected points would fail again.
type RejectedError struct {
	// Index of each rejected point in the slice given to WriteReadings, with its reason.
	Rejected map[int]string
}

func (e *RejectedError) Error() string {
	return fmt.Sprintf("influxdb rejected %d points", len(e.Rejected))
}

// WriteReadings stores points idempotently: a point's identity is its series (park,
// enterprise, meter, carrier) and timestamp, so writing it again overwrites it. An error that
// is not a *RejectedError means nothing can be assumed stored: retry the whole slice.
func (s *Store) WriteReadings(ctx context.Context, points []Point) error {
	rejected := map[int]string{}
	if err := s.writeRange(ctx, points, 0, rejected); err != nil {
		return err
	}
	if len(rejected) > 0 {
		return &RejectedError{Rejected: rejected}
	}
	return nil
}

// writeRange writes points and, when the server refuses some of them (HTTP 400 with a partial
// write or a parse error), bisects to find exactly which, recording them in rejected.
func (s *Store) writeRange(ctx context.Context, points []Point, offset int, rejected map[int]string) error {
	if len(points) == 0 {
		return nil
	}
	err := s.write.WriteRecord(ctx, lineProtocol(points))
	if err == nil {
		return nil
	}
	var herr *ihttp.Error
	if !errors.As(err, &herr) || herr.StatusCode != http.StatusBadRequest {
		return fmt.Errorf("write %d points: %w", len(points), err)
	}
	if len(points) == 1 {
		rejected[offset] = herr.Message
		return nil
	}
	mid := len(points) / 2
	if err := s.writeRange(ctx, points[:mid], offset, rejected); err != nil {
		return err
	}
	return s.writeRange(ctx, points[mid:], offset+mid, rejected)
}

// lineProtocol renders points as InfluxDB line protocol with millisecond timestamps. The
// value is always written as a float so the field type never conflicts.
func lineProtocol(points []Point) string {
	var b strings.Builder
	b.Grow(len(points) * 96)
	for i, p := range points {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(Measurement)
		b.WriteString(",carrier=")
		writeTag(&b, p.Carrier)
		if p.Enterprise != "" {
			b.WriteString(",enterprise=")
			writeTag(&b, p.Enterprise)
		}
		b.WriteString(",meter=")
		writeTag(&b, p.Meter)
		b.WriteString(",park=")
		writeTag(&b, p.Park)
		b.WriteString(" value=")
		b.WriteString(formatFloat(p.Value))
		b.WriteByte(' ')
		b.WriteString(strconv.FormatInt(p.TS.UnixMilli(), 10))
	}
	return b.String()
}

// formatFloat writes v so that line protocol reads it back as the same float64 (never as an
// integer: "1" would be a float too, but keep a decimal point for readers of the data).
func formatFloat(v float64) string {
	s := strconv.FormatFloat(v, 'g', -1, 64)
	if !strings.ContainsAny(s, ".eEn") && !math.IsInf(v, 0) {
		s += ".0"
	}
	return s
}

// writeTag escapes commas, equals signs and spaces in a tag value.
func writeTag(b *strings.Builder, v string) {
	if !strings.ContainsAny(v, ",= \\") {
		b.WriteString(v)
		return
	}
	for _, r := range v {
		switch r {
		case ',', '=', ' ', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
}
