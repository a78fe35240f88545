// Package collector moves reading batches from the MQTT broker into InfluxDB without losing or
// duplicating any: it takes them from the collectors' shared subscription, validates every
// reading against the registry, writes them in size- and time-bounded batches, and only then
// acknowledges each message to the broker (manual PUBACK) and to its gateway (the app-level
// ack that frees the gateway's disk log). What cannot be stored goes to the dead-letter store
// with its reason, and per-gateway sequences are tracked to reveal gaps.
package collector

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
	"github.com/parkcarbon/parkcarbon/pkg/store/influx"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Writer stores readings; an *influx.RejectedError names points refused for themselves, any
// other error means retry everything.
type Writer interface {
	WriteReadings(ctx context.Context, points []influx.Point) error
}

// Ledger durably records dead letters and handled batch sequences in one transaction.
type Ledger interface {
	RecordBatches(ctx context.Context, dead []telemetry.DeadLetter, seqs []telemetry.SeqMark) error
}

// Options configure a Collector.
type Options struct {
	// BrokerURL is the broker, e.g. tcp://127.0.0.1:1883.
	BrokerURL string
	Username  string
	Password  string
	TLS       *tls.Config
	// ClientID must be stable across restarts of this collector (its persistent session keeps
	// the messages it has not acknowledged) and unique among collectors.
	ClientID string

	Meters MeterSource
	Writer Writer
	Ledger Ledger

	// BatchReadings flushes a write once this many readings are waiting; default 5000.
	BatchReadings int
	// BatchDelay flushes a write at most this long after its first reading; default 200ms.
	BatchDelay time.Duration
	// Writers is the number of concurrent InfluxDB writes; default 2.
	Writers int
	// MaxPendingReadings bounds the readings received but not yet acknowledged; beyond it
	// the collector stops taking messages, and the broker keeps them. Default 100,000, which
	// is the broker's in-flight window of 100 messages at 1,000 readings each.
	MaxPendingReadings int
	// MaxFutureSkew refuses readings stamped further ahead of now; default 10 minutes.
	MaxFutureSkew time.Duration
	// MeterCacheTTL bounds how stale the registry cache may be; default 30s.
	MeterCacheTTL time.Duration

	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
}

func (o *Options) defaults() {
	if o.BatchReadings <= 0 {
		o.BatchReadings = 10000
	}
	if o.BatchDelay <= 0 {
		o.BatchDelay = 200 * time.Millisecond
	}
	if o.Writers <= 0 {
		o.Writers = 4
	}
	if o.MaxPendingReadings <= 0 {
		o.MaxPendingReadings = 100_000
	}
	if o.MaxFutureSkew <= 0 {
		o.MaxFutureSkew = 10 * time.Minute
	}
	if o.MeterCacheTTL <= 0 {
		o.MeterCacheTTL = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

// Collector is one member of the collectors' shared subscription.
type Collector struct {
	opts    Options
	log     *slog.Logger
	meters  *meterCache
	client  paho.Client
	pending *semaphore.Weighted
	in      chan *job
	flushes chan []*job
	metrics *metrics

	ctx        context.Context
	cancel     context.CancelFunc
	wg         sync.WaitGroup
	subscribed chan struct{} // closed after the first successful SUBSCRIBE
	subOnce    sync.Once
}

// job is one MQTT message on its way through the collector.
type job struct {
	msg    paho.Message
	points []influx.Point
	dead   []telemetry.DeadLetter
	seq    *telemetry.SeqMark // nil when the header did not decode
	ackTo  string             // the gateway's acks topic
	weight int64
}

// New checks the options and builds a collector; Start connects it.
func New(opts Options) (*Collector, error) {
	opts.defaults()
	switch {
	case opts.BrokerURL == "":
		return nil, errors.New("collector: broker URL is required")
	case opts.ClientID == "":
		return nil, errors.New("collector: a stable client id is required")
	case opts.Meters == nil || opts.Writer == nil || opts.Ledger == nil:
		return nil, errors.New("collector: meters, writer and ledger are required")
	}
	c := &Collector{
		opts:    opts,
		log:     opts.Logger,
		meters:  newMeterCache(opts.Meters, opts.MeterCacheTTL, opts.Now),
		pending: semaphore.NewWeighted(int64(opts.MaxPendingReadings)),
		in:      make(chan *job, 1024),
		flushes: make(chan []*job, opts.Writers),
		metrics: newMetrics(opts.Registerer),

		subscribed: make(chan struct{}),
	}
	return c, nil
}

// Start connects to the broker (retrying in the background until it answers) and starts
// consuming. Stop with Close.
func (c *Collector) Start(ctx context.Context) error {
	c.ctx, c.cancel = context.WithCancel(context.WithoutCancel(ctx))
	c.wg.Add(1 + c.opts.Writers)
	go c.batch()
	for range c.opts.Writers {
		go c.flush()
	}
	po := paho.NewClientOptions().
		AddBroker(c.opts.BrokerURL).
		SetClientID(c.opts.ClientID).
		SetUsername(c.opts.Username).
		SetPassword(c.opts.Password).
		SetCleanSession(false).
		SetAutoAckDisabled(true).
		SetOrderMatters(false).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(c.onMessage). // queued messages may arrive before SUBSCRIBE
		SetOnConnectHandler(c.onConnect).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			c.metrics.connected.Set(0)
			c.log.Warn("broker connection lost", "err", err)
		})
	if c.opts.TLS != nil {
		po.SetTLSConfig(c.opts.TLS)
	}
	c.client = paho.NewClient(po)
	c.client.Connect() // with ConnectRetry the token completes only once connected; don't wait
	return nil
}

func (c *Collector) onConnect(cl paho.Client) {
	c.metrics.connected.Set(1)
	filters := map[string]byte{telemetry.SharedSubscription: 1, telemetry.SharedProtoSubscription: 1}
	tok := cl.SubscribeMultiple(filters, c.onMessage)
	go func() {
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			c.log.Error("subscribe failed", "err", tok.Error())
			return
		}
		c.log.Info("collector subscribed", "client_id", c.opts.ClientID)
		c.subOnce.Do(func() { close(c.subscribed) })
	}()
}

// Subscribed is closed once the collector's subscription is in place. The broker keeps
// messages for the subscription from then on; before the first subscription of the group,
// there is nobody to keep them for (the agents resend what is not acknowledged).
func (c *Collector) Subscribed() <-chan struct{} { return c.subscribed }

// Ready reports whether the collector is connected and subscribed.
func (c *Collector) Ready() error {
	select {
	case <-c.subscribed:
	default:
		return errors.New("not subscribed yet")
	}
	if c.client == nil || !c.client.IsConnectionOpen() {
		return errors.New("not connected to the broker")
	}
	return nil
}

// Close stops the collector. Messages not yet acknowledged stay with the broker, which
// redelivers them to this client id's session or, after it expires, to the other collectors.
func (c *Collector) Close() error {
	if c.cancel == nil {
		return nil
	}
	c.cancel()
	c.wg.Wait()
	c.client.Disconnect(250)
	return nil
}

// onMessage decodes and validates one message, then queues it for writing. It blocks while
// too many readings are pending, which leaves further messages with the broker.
func (c *Collector) onMessage(_ paho.Client, msg paho.Message) {
	j := c.decode(msg)
	c.metrics.messages.Inc()
	if err := c.pending.Acquire(c.ctx, j.weight); err != nil {
		return // shutting down: not acknowledged, so redelivered
	}
	c.metrics.pending.Add(float64(j.weight))
	select {
	case c.in <- j:
	case <-c.ctx.Done():
		c.pending.Release(j.weight)
	}
}

// decode turns a message into a job: points to write, dead letters, the sequence to mark.
func (c *Collector) decode(msg paho.Message) *job {
	now := c.opts.Now()
	payload := msg.Payload()
	j := &job{msg: msg, weight: 1}
	deadMsg := func(park, gw string, seq uint64, reason string) *job {
		j.dead = append(j.dead, telemetry.DeadLetter{Park: park, Gateway: gw, Topic: msg.Topic(), Seq: seq,
			Reason: reason, Payload: telemetry.Truncate(payload), PayloadBytes: len(payload), ReceivedAt: now})
		return j
	}
	topic, err := telemetry.ParseTopic(msg.Topic())
	if err != nil {
		return deadMsg("", "", 0, err.Error())
	}
	decode := telemetry.DecodeJSON
	if topic.Proto {
		decode = telemetry.DecodeProto
	}
	batch, badReadings, err := decode(payload)
	if err != nil {
		return deadMsg(topic.Park, topic.Gateway, 0, err.Error())
	}
	j.seq = &telemetry.SeqMark{Park: topic.Park, Gateway: topic.Gateway, Seq: batch.Seq, At: now}
	j.ackTo = telemetry.AcksTopic(topic.Park, topic.Gateway)
	if batch.Gateway != topic.Gateway {
		return deadMsg(topic.Park, topic.Gateway, batch.Seq,
			fmt.Sprintf("batch names gateway %q but was published on the topic of gateway %q", batch.Gateway, topic.Gateway))
	}
	for _, b := range badReadings {
		j.dead = append(j.dead, telemetry.DeadLetter{Park: topic.Park, Gateway: topic.Gateway, Topic: msg.Topic(),
			Seq: batch.Seq, Meter: b.Meter, Reason: b.Reason, Payload: b.Raw, PayloadBytes: len(b.Raw), ReceivedAt: now})
	}
	j.points = make([]influx.Point, 0, len(batch.Readings))
	horizon := now.Add(c.opts.MaxFutureSkew)
	for _, r := range batch.Readings {
		reason := ""
		m, found, err := c.lookupMeter(topic.Park, r.Meter)
		switch {
		case errors.Is(err, errUnknownPark):
			return deadMsg(topic.Park, topic.Gateway, batch.Seq, "unknown park "+topic.Park)
		case err != nil:
			return deadMsg(topic.Park, topic.Gateway, batch.Seq, err.Error()) // only on shutdown
		case !found:
			reason = fmt.Sprintf("unknown meter %q in park %s", r.Meter, topic.Park)
		case m.GatewayID != topic.Gateway:
			reason = fmt.Sprintf("meter %s is not read by gateway %s (its gateway is %q)", r.Meter, topic.Gateway, m.GatewayID)
		case r.TS.After(horizon):
			reason = fmt.Sprintf("timestamp %s is more than %s ahead of the collector's clock", r.TS.Format(time.RFC3339), c.opts.MaxFutureSkew)
		case math.IsNaN(r.Value) || math.IsInf(r.Value, 0):
			reason = "value is not a finite number"
		}
		if reason != "" {
			raw := fmt.Sprintf(`{"meter":%q,"ts":%q,"value":%v}`, r.Meter, r.TS.Format(time.RFC3339Nano), r.Value)
			j.dead = append(j.dead, telemetry.DeadLetter{Park: topic.Park, Gateway: topic.Gateway, Topic: msg.Topic(),
				Seq: batch.Seq, Meter: r.Meter, Reason: reason, Payload: raw, PayloadBytes: len(raw), ReceivedAt: now})
			continue
		}
		j.points = append(j.points, influx.Point{Park: topic.Park, Enterprise: m.EnterpriseID, Meter: m.ID,
			Carrier: string(m.Carrier), TS: r.TS, Value: r.Value})
	}
	j.weight = int64(max(1, min(len(j.points), c.opts.MaxPendingReadings)))
	return j
}

// lookupMeter asks the registry cache, retrying while the registry is unreachable: a message
// is never dead-lettered because the database was briefly down.
func (c *Collector) lookupMeter(park, meter string) (m registry.Meter, found bool, err error) {
	if m, found, err = c.meters.lookup(c.ctx, park, meter); err == nil || errors.Is(err, errUnknownPark) {
		return m, found, err
	}
	op := func() (bool, error) {
		var lerr error
		m, found, lerr = c.meters.lookup(c.ctx, park, meter)
		if errors.Is(lerr, errUnknownPark) {
			return false, backoff.Permanent(lerr)
		}
		return found, lerr
	}
	_, err = backoff.Retry(c.ctx, op, backoff.WithMaxElapsedTime(0), backoff.WithNotify(func(err error, d time.Duration) {
		c.log.Warn("registry lookup failed, retrying", "park", park, "err", err, "retry_in", d)
	}))
	return m, found, err
}

// batch groups jobs into writes of about BatchReadings readings, or whatever arrived within
// BatchDelay of the group's first job.
func (c *Collector) batch() {
	defer c.wg.Done()
	defer close(c.flushes)
	var group []*job
	n := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	send := func() {
		if len(group) == 0 {
			return
		}
		select {
		case c.flushes <- group:
		case <-c.ctx.Done():
		}
		group, n = nil, 0
		timer.Stop()
	}
	for {
		select {
		case j := <-c.in:
			if len(group) == 0 {
				timer.Reset(c.opts.BatchDelay)
			}
			group = append(group, j)
			n += len(j.points)
			if n >= c.opts.BatchReadings {
				send()
			}
		case <-timer.C:
			send()
		case <-c.ctx.Done():
			return
		}
	}
}

// flush writes a group's points (retrying while InfluxDB is down, holding every ack), records
// its dead letters and sequences, and then acknowledges each message.
func (c *Collector) flush() {
	defer c.wg.Done()
	for group := range c.flushes {
		if err := c.store(group); err != nil {
			c.log.Warn("write abandoned at shutdown; the broker will redeliver", "messages", len(group), "err", err)
			for _, j := range group {
				c.release(j)
			}
			continue
		}
		for _, j := range group {
			j.msg.Ack()
			if j.seq != nil {
				c.client.Publish(j.ackTo, 1, false, telemetry.EncodeAck(telemetry.Ack{Seq: j.seq.Seq}))
			}
			c.metrics.acked.Inc()
			c.release(j)
		}
	}
}

func (c *Collector) release(j *job) {
	c.pending.Release(j.weight)
	c.metrics.pending.Sub(float64(j.weight))
}

func (c *Collector) store(group []*job) error {
	var points []influx.Point
	var owner []*job // owner[i] is the job of points[i]
	for _, j := range group {
		points = append(points, j.points...)
		for range j.points {
			owner = append(owner, j)
		}
	}
	retry := func(what string, op func() error) error {
		_, err := backoff.Retry(c.ctx, func() (struct{}, error) { return struct{}{}, op() },
			backoff.WithMaxElapsedTime(0),
			backoff.WithBackOff(&backoff.ExponentialBackOff{InitialInterval: 100 * time.Millisecond,
				RandomizationFactor: 0.2, Multiplier: 2, MaxInterval: 5 * time.Second}),
			backoff.WithNotify(func(err error, d time.Duration) {
				c.metrics.retries.WithLabelValues(what).Inc()
				c.log.Warn("store failed, retrying; messages stay unacknowledged", "what", what, "err", err, "retry_in", d)
			}))
		return err
	}
	start := time.Now()
	var rejected map[int]string
	err := retry("influxdb", func() error {
		err := c.opts.Writer.WriteReadings(c.ctx, points)
		var rej *influx.RejectedError
		if errors.As(err, &rej) {
			rejected = rej.Rejected
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	c.metrics.writeSeconds.Observe(time.Since(start).Seconds())
	c.metrics.written.Add(float64(len(points) - len(rejected)))
	var dead []telemetry.DeadLetter
	var seqs []telemetry.SeqMark
	for i, reason := range rejected {
		p, j := points[i], owner[i]
		raw := fmt.Sprintf(`{"meter":%q,"ts":%q,"value":%v}`, p.Meter, p.TS.Format(time.RFC3339Nano), p.Value)
		j.dead = append(j.dead, telemetry.DeadLetter{Park: p.Park, Gateway: j.seq.Gateway, Topic: j.msg.Topic(), Seq: j.seq.Seq,
			Meter: p.Meter, Reason: "refused by InfluxDB: " + reason, Payload: raw, PayloadBytes: len(raw), ReceivedAt: c.opts.Now()})
	}
	for _, j := range group {
		dead = append(dead, j.dead...)
		if j.seq != nil {
			seqs = append(seqs, *j.seq)
		}
	}
	if err := retry("sql", func() error { return c.opts.Ledger.RecordBatches(c.ctx, dead, seqs) }); err != nil {
		return err
	}
	for _, d := range dead {
		c.metrics.dead.WithLabelValues(deadKind(d)).Inc()
	}
	return nil
}

func deadKind(d telemetry.DeadLetter) string {
	if d.Meter == "" {
		return "message"
	}
	return "reading"
}
