// Package notify delivers alert notifications to webhook and email endpoints without ever
// blocking the evaluator: Enqueue only puts a message on a bounded queue (or refuses it when
// the queue is full), a few workers deliver, and failed attempts are retried with exponential
// backoff on timers that hold no worker. Deliveries to one endpoint are made one at a time, in
// the order they were queued, so a hanging endpoint ties up at most one worker and a resolution
// does not overtake its firing (though a message waiting to retry does not hold back the ones
// queued after it). Every attempt is written to a DeliveryLog.
package notify

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/parkcarbon/parkcarbon/pkg/alerting"
	"github.com/prometheus/client_golang/prometheus"
)

// DeliveryLog records delivery attempts; alerting.Store satisfies it.
type DeliveryLog interface {
	RecordDelivery(ctx context.Context, d alerting.Delivery) error
}

var _ DeliveryLog = alerting.Store(nil)

// Defaults of Options.
const (
	DefaultHTTPTimeout    = 10 * time.Second
	DefaultMaxAttempts    = 6
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultQueueSize      = 10_000
	DefaultWorkers        = 4
	DefaultCloseTimeout   = 15 * time.Second
	DefaultSMTPTimeout    = 30 * time.Second
)

// recordTimeout bounds one RecordDelivery call.
const recordTimeout = 5 * time.Second

// ErrNoSMTP is the error of every email delivery when no SMTP server is configured.
var ErrNoSMTP = errors.New("no SMTP server configured (set the SMTP address to deliver email notifications)")

// Options configure a Dispatcher; zero fields take the defaults.
type Options struct {
	// Log records every attempt; nil: attempts are only logged.
	Log  DeliveryLog
	SMTP SMTPConfig
	// HTTPClient posts webhooks; its Timeout bounds one attempt. Default: a client with a
	// DefaultHTTPTimeout timeout that does not follow redirects.
	HTTPClient *http.Client
	// MaxAttempts per message, the first included (DefaultMaxAttempts).
	MaxAttempts int
	// InitialBackoff and MaxBackoff bound the exponential, jittered wait between attempts
	// (DefaultInitialBackoff, DefaultMaxBackoff); MaxBackoff also caps Retry-After.
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// QueueSize bounds the messages accepted and not yet finished, retries waiting included
	// (DefaultQueueSize).
	QueueSize int
	// Workers deliver concurrently (DefaultWorkers).
	Workers int
	// CloseTimeout is how long Close lets queued and in-flight deliveries finish before it
	// cancels them (DefaultCloseTimeout).
	CloseTimeout time.Duration
	Logger       *slog.Logger
	Now          func() time.Time
	// Registerer, when set, registers the parkcarbon_notify_* metrics.
	Registerer prometheus.Registerer
}

// job is one message to one endpoint, through all its attempts. A job is owned by one
// goroutine at a time (Enqueue, a worker, a retry timer), handed over under mu.
type job struct {
	ep      alerting.Endpoint
	msg     Message
	id      string // X-Parkcarbon-Delivery
	key     string // the endpoint, for one-at-a-time delivery
	attempt int
	bo      *backoff.ExponentialBackOff
}

// Dispatcher delivers notifications; build it with New.
type Dispatcher struct {
	log         DeliveryLog
	smtp        SMTPConfig
	client      *http.Client
	maxAttempts int
	initial     time.Duration
	maxBackoff  time.Duration
	workers     int
	closeAfter  time.Duration
	logger      *slog.Logger
	now         func() time.Time
	metrics     *metrics

	// ready holds the keys of endpoints with jobs and no worker, each at most once. There are
	// never more such endpoints than outstanding jobs, and outstanding never exceeds its
	// capacity (QueueSize), so sends (under mu) never block.
	ready chan string
	size  int

	mu          sync.Mutex
	closed      bool
	started     bool
	cancel      context.CancelFunc
	outstanding int                  // pending + in flight + waiting to retry
	waiting     map[*job]*time.Timer // retries scheduled
	pending     map[string][]*job    // jobs by endpoint, oldest first; present: ready or owned by a worker
	wg          sync.WaitGroup       // workers
}

// New builds a Dispatcher; call Start to deliver and Close to stop.
func New(opts Options) *Dispatcher {
	d := &Dispatcher{
		log:         opts.Log,
		smtp:        opts.SMTP,
		client:      opts.HTTPClient,
		maxAttempts: opts.MaxAttempts,
		initial:     opts.InitialBackoff,
		maxBackoff:  opts.MaxBackoff,
		workers:     opts.Workers,
		closeAfter:  opts.CloseTimeout,
		logger:      opts.Logger,
		now:         opts.Now,
		metrics:     newMetrics(opts.Registerer),
		waiting:     map[*job]*time.Timer{},
		pending:     map[string][]*job{},
	}
	if d.client == nil {
		d.client = &http.Client{
			Timeout: DefaultHTTPTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse // a 3xx is a failure, not a new destination
			},
		}
	}
	if d.maxAttempts <= 0 {
		d.maxAttempts = DefaultMaxAttempts
	}
	if d.initial <= 0 {
		d.initial = DefaultInitialBackoff
	}
	if d.maxBackoff <= 0 {
		d.maxBackoff = DefaultMaxBackoff
	}
	d.maxBackoff = max(d.maxBackoff, d.initial)
	if d.workers <= 0 {
		d.workers = DefaultWorkers
	}
	if d.closeAfter <= 0 {
		d.closeAfter = DefaultCloseTimeout
	}
	if d.smtp.Timeout <= 0 {
		d.smtp.Timeout = DefaultSMTPTimeout
	}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	if d.now == nil {
		d.now = time.Now
	}
	size := opts.QueueSize
	if size <= 0 {
		size = DefaultQueueSize
	}
	d.size = size
	d.ready = make(chan string, size)
	return d
}

// Start starts the workers and returns. Cancelling ctx stops the dispatcher at once: it stops
// accepting, in-flight attempts are cancelled and what is left is abandoned. Start after Start
// or Close does nothing.
func (d *Dispatcher) Start(ctx context.Context) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.started || d.closed {
		return
	}
	d.started = true
	ctx, d.cancel = context.WithCancel(ctx)
	d.wg.Add(d.workers)
	for range d.workers {
		go d.work(ctx)
	}
	go func() {
		<-ctx.Done()
		d.stopAccepting()
	}()
}

// Enqueue queues msg for ep and returns at once: false when the queue is full or the dispatcher
// is closed (the message is dropped, counted and logged).
func (d *Dispatcher) Enqueue(ep alerting.Endpoint, msg Message) bool {
	if msg.SentAt.IsZero() {
		msg.SentAt = d.now()
	}
	j := &job{ep: ep, msg: msg, id: "dl_" + strings.ToLower(rand.Text()), key: endpointKey(ep)}
	d.mu.Lock()
	closed, full := d.closed, d.outstanding >= d.size
	if !closed && !full {
		d.outstanding++
		d.metrics.queue.Set(float64(d.outstanding))
		d.push(j, false)
	}
	d.mu.Unlock()
	if closed || full {
		reason := "queue_full"
		if closed {
			reason = "closed"
		}
		d.metrics.deliveries.WithLabelValues(kindLabel(ep.Kind), outcomeDropped).Inc()
		d.logger.Warn("notification dropped", "reason", reason, "endpoint_id", ep.ID,
			"alert_id", msg.Alert.ID, "event", msg.Event, "queue_size", d.size)
		return false
	}
	return true
}

// Notify enqueues event ev of rule ruleName for ep: Enqueue for callers holding an event (it
// satisfies the alerting engine's notifier interface).
func (d *Dispatcher) Notify(ep alerting.Endpoint, ev alerting.Event, ruleName string) bool {
	return d.Enqueue(ep, Message{Event: ev.Kind, Alert: ev.Alert, RuleName: ruleName, ParkID: ev.Alert.ParkID, Summary: ev.Alert.Summary})
}

// Close stops accepting messages, abandons the retries still waiting, lets the queued and
// in-flight deliveries finish for up to CloseTimeout, then cancels the rest and returns once
// every worker has stopped.
func (d *Dispatcher) Close() {
	d.stopAccepting()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	t := time.NewTimer(d.closeAfter)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		d.logger.Warn("notification close deadline passed, cancelling deliveries", "timeout", d.closeAfter)
		d.stopWorkers()
		<-done
	}
	d.stopWorkers()
	// Left only when Start was never called.
	for key := range d.ready {
		d.mu.Lock()
		jobs := d.pending[key]
		delete(d.pending, key)
		d.mu.Unlock()
		for _, j := range jobs {
			d.finish(j, outcomeAbandoned, nil)
		}
	}
}

// push adds j to its endpoint's jobs, at the back or (a retry, the oldest) at the front, and
// makes the endpoint ready when no worker has it. The caller holds mu and has counted j in
// outstanding.
func (d *Dispatcher) push(j *job, front bool) {
	jobs, known := d.pending[j.key]
	if front {
		d.pending[j.key] = append([]*job{j}, jobs...)
	} else {
		d.pending[j.key] = append(jobs, j)
	}
	if !known {
		d.ready <- j.key
	}
}

func (d *Dispatcher) stopWorkers() {
	d.mu.Lock()
	cancel := d.cancel
	d.mu.Unlock()
	if cancel != nil {
		cancel()
	}
}

// stopAccepting refuses new messages, closes ready and abandons the waiting retries; it is
// idempotent.
func (d *Dispatcher) stopAccepting() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	d.closed = true
	abandoned := make([]*job, 0, len(d.waiting))
	for j, t := range d.waiting {
		t.Stop() // a timer that already fired finds j gone from waiting and does nothing
		abandoned = append(abandoned, j)
	}
	clear(d.waiting)
	close(d.ready)
	d.mu.Unlock()
	for _, j := range abandoned {
		d.finish(j, outcomeAbandoned, nil)
	}
}

// work takes ready endpoints until ready is closed and drained, and delivers each endpoint's
// jobs one at a time, oldest first, until it has none left.
func (d *Dispatcher) work(ctx context.Context) {
	defer d.wg.Done()
	for key := range d.ready {
		for {
			d.mu.Lock()
			jobs := d.pending[key]
			if len(jobs) == 0 {
				delete(d.pending, key)
				d.mu.Unlock()
				break
			}
			j := jobs[0]
			d.pending[key] = jobs[1:]
			d.mu.Unlock()
			d.attempt(ctx, j)
		}
	}
}

// result is the outcome of one attempt.
type result struct {
	status string // HTTP status code or SMTP reply code
	err    error
	// retry: the error is temporary; retryAfter is the receiver's Retry-After (0: none).
	retry      bool
	retryAfter time.Duration
}

func permanent(status string, err error) result {
	return result{status: status, err: err}
}

func temporary(status string, err error) result {
	return result{status: status, err: err, retry: true}
}

// attempt makes one attempt of j, records it, and finishes j or schedules its retry.
func (d *Dispatcher) attempt(ctx context.Context, j *job) {
	if ctx.Err() != nil {
		d.finish(j, outcomeAbandoned, nil)
		return
	}
	j.attempt++
	start := d.now()
	var res result
	switch j.ep.Kind {
	case alerting.EndpointWebhook:
		res = d.postWebhook(ctx, j)
	case alerting.EndpointEmail:
		res = d.sendEmail(ctx, j)
	default:
		res = permanent("", errors.New("unknown endpoint kind "+j.ep.Kind+": not webhook or email"))
	}
	elapsed := d.now().Sub(start)
	d.record(j, start, elapsed, res)

	switch {
	case res.err == nil:
		d.finish(j, outcomeDelivered, nil)
	case ctx.Err() != nil:
		d.finish(j, outcomeAbandoned, res.err)
	case !res.retry || j.attempt >= d.maxAttempts:
		d.finish(j, outcomeFailed, res.err)
	default:
		d.retryLater(j, res)
	}
}

func (d *Dispatcher) record(j *job, at time.Time, elapsed time.Duration, res result) {
	kind := kindLabel(j.ep.Kind)
	rec := alerting.Delivery{
		ParkID:     j.msg.park(),
		EndpointID: j.ep.ID,
		AlertID:    j.msg.Alert.ID,
		Event:      j.msg.Event,
		Attempt:    j.attempt,
		At:         at,
		OK:         res.err == nil,
		Status:     res.status,
		Duration:   elapsed,
	}
	if res.err != nil {
		rec.Error = res.err.Error()
		d.metrics.attempts.WithLabelValues(kind, "error").Inc()
		d.logger.Debug("notification attempt failed", "endpoint_id", j.ep.ID, "delivery_id", j.id,
			"attempt", j.attempt, "status", res.status, "retry", res.retry, "err", res.err)
	} else {
		d.metrics.attempts.WithLabelValues(kind, "ok").Inc()
	}
	if d.log == nil {
		return
	}
	// Recorded even when the attempt was cancelled by shutdown.
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	if err := d.log.RecordDelivery(ctx, rec); err != nil {
		d.logger.Warn("record delivery", "endpoint_id", j.ep.ID, "delivery_id", j.id, "attempt", j.attempt, "err", err)
	}
}

// retryLater puts j back in front of its endpoint's jobs after its backoff, holding no worker meanwhile.
func (d *Dispatcher) retryLater(j *job, res result) {
	if j.bo == nil {
		j.bo = &backoff.ExponentialBackOff{
			InitialInterval:     d.initial,
			RandomizationFactor: backoff.DefaultRandomizationFactor,
			Multiplier:          2,
			MaxInterval:         d.maxBackoff,
		}
		j.bo.Reset()
	}
	delay := retryDelay(j.bo.NextBackOff(), res.retryAfter, d.maxBackoff)
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		d.finish(j, outcomeAbandoned, res.err)
		return
	}
	// The timer cannot run requeue before it is in waiting: requeue takes mu.
	d.waiting[j] = time.AfterFunc(delay, func() { d.requeue(j) })
	d.mu.Unlock()
}

func (d *Dispatcher) requeue(j *job) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.waiting[j]; !ok {
		return // abandoned by stopAccepting
	}
	delete(d.waiting, j)
	d.push(j, true)
}

// retryDelay is the wait before the next attempt: the backoff, or the receiver's Retry-After
// when longer, never more than maxDelay.
func retryDelay(backoffDelay, retryAfter, maxDelay time.Duration) time.Duration {
	return min(max(backoffDelay, retryAfter), maxDelay)
}

// finish ends j with its final outcome.
func (d *Dispatcher) finish(j *job, outcome string, err error) {
	d.mu.Lock()
	d.outstanding--
	d.metrics.queue.Set(float64(d.outstanding))
	d.mu.Unlock()
	d.metrics.deliveries.WithLabelValues(kindLabel(j.ep.Kind), outcome).Inc()
	attrs := []any{"outcome", outcome, "endpoint_id", j.ep.ID, "kind", j.ep.Kind, "delivery_id", j.id,
		"alert_id", j.msg.Alert.ID, "event", j.msg.Event, "attempts", j.attempt}
	switch outcome {
	case outcomeDelivered:
		d.logger.Debug("notification delivered", attrs...)
	default:
		if err != nil {
			attrs = append(attrs, "err", err)
		}
		d.logger.Warn("notification not delivered", attrs...)
	}
}

// endpointKey identifies an endpoint for one-at-a-time delivery.
func endpointKey(ep alerting.Endpoint) string {
	return strings.Join([]string{ep.Kind, ep.ParkID, ep.ID, ep.URL, strings.Join(ep.To, ",")}, "\x00")
}
