package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/parkcarbon/parkcarbon/edge/wal"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// ackSyncInterval is how often acknowledgements are persisted: after a crash, batches acked
// within this window are resent (harmless duplicates).
const ackSyncInterval = time.Second

// publisher sends the WAL's pending batches in sequence order, at most limit unacknowledged at
// a time, and frees them when the collector's application-level ack arrives. Everything
// pending is replayed in order after each (re)connection; a batch whose ack does not come
// within ackTimeout is resent. The WAL is its only state that matters: a restart loses nothing.
type publisher struct {
	client     mqtt.Client
	wal        *wal.WAL
	clock      clock
	now        func() time.Time // real time, for ack timeouts
	log        *slog.Logger
	m          *metrics
	topic      string
	ackTopic   string
	limit      int
	ackTimeout time.Duration

	conn      chan bool // connection up (after subscribing) or lost
	acks      chan uint64
	appended  chan struct{}
	done      chan struct{}
	connected atomic.Bool
	lastFail  atomic.Value // string: the reason of the last failed connection attempt

	// loop state
	up       bool
	inflight map[uint64]time.Time // seq → last sent (real time)
	cursor   uint64               // highest seq sent since the last (re)connection
}

func newPublisher(cfg Config, password string, w *wal.WAL, clk clock, now func() time.Time, log *slog.Logger, m *metrics) (*publisher, error) {
	p := &publisher{
		wal: w, clock: clk, now: now, log: log, m: m,
		topic:      telemetry.ReadingsTopic(cfg.ParkID, cfg.GatewayID),
		ackTopic:   telemetry.AcksTopic(cfg.ParkID, cfg.GatewayID),
		limit:      cfg.Publish.Inflight,
		ackTimeout: cfg.Publish.AckTimeout,
		conn:       make(chan bool, 16),
		acks:       make(chan uint64, 4096),
		appended:   make(chan struct{}, 1),
		done:       make(chan struct{}),
		inflight:   map[uint64]time.Time{},
	}
	b := cfg.Broker
	o := mqtt.NewClientOptions().
		AddBroker(b.URL).
		SetClientID(b.ClientID).
		SetUsername(b.Username).
		SetPassword(password).
		SetCleanSession(false). // acks queued while we are away are delivered on return
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(min(b.ReconnectMax, 5*time.Second)).
		SetMaxReconnectInterval(b.ReconnectMax).
		SetKeepAlive(b.KeepAlive).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(false).
		// Messages paho itself resends after a reconnect go out in the order they were sent.
		SetStore(mqtt.NewOrderedMemoryStore()).
		// With a persistent session, acks can arrive before Subscribe registers its handler.
		SetDefaultPublishHandler(p.onMessage).
		SetOnConnectHandler(p.onConnect).
		SetConnectionLostHandler(p.onLost).
		SetConnectionNotificationHandler(p.onNotification)
	if strings.HasPrefix(b.URL, "ssl://") {
		tc, err := tlsConfig(b)
		if err != nil {
			return nil, err
		}
		o.SetTLSConfig(tc)
	}
	p.client = mqtt.NewClient(o)
	return p, nil
}

func tlsConfig(b BrokerConfig) (*tls.Config, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         u.Hostname(),
		InsecureSkipVerify: b.TLS.InsecureSkipVerify, //nolint:gosec // explicit opt-in, documented as for tests
	}
	if b.TLS.CAFile != "" {
		pem, err := os.ReadFile(b.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("broker.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker.tls.ca_file %s holds no PEM certificate", b.TLS.CAFile)
		}
	}
	if b.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(b.TLS.CertFile, b.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.tls client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

func (p *publisher) isConnected() bool { return p.connected.Load() }

// notifyAppended tells the loop a new batch is in the WAL; it never blocks.
func (p *publisher) notifyAppended(uint64) {
	select {
	case p.appended <- struct{}{}:
	default:
	}
}

func (p *publisher) onConnect(c mqtt.Client) {
	tok := c.Subscribe(p.ackTopic, 1, p.onMessage)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		// The persistent session may still hold the subscription; without it acks never
		// come and batches are resent until the operator fixes the broker's ACL.
		p.log.Error("cannot subscribe to acks", "topic", p.ackTopic, "err", tok.Error())
	}
	p.log.Info("connected to broker", "topic", p.topic)
	p.sendConn(true)
}

// onNotification reports failed connection attempts, which paho otherwise retries silently: a
// new reason (wrong password, refused, TLS) at warn level, repeats at debug level.
func (p *publisher) onNotification(_ mqtt.Client, n mqtt.ConnectionNotification) {
	switch n := n.(type) {
	case mqtt.ConnectionNotificationFailed:
		p.m.connectFailures.Inc()
		reason := fmt.Sprint(n.Reason)
		if prev, _ := p.lastFail.Swap(reason).(string); prev != reason {
			p.log.Warn("cannot connect to broker, retrying", "err", n.Reason)
		} else {
			p.log.Debug("cannot connect to broker, retrying", "err", n.Reason)
		}
	case mqtt.ConnectionNotificationConnected:
		p.lastFail.Store("")
	}
}

func (p *publisher) onLost(_ mqtt.Client, err error) {
	p.log.Warn("connection to broker lost, readings are kept in the wal", "err", err)
	p.sendConn(false)
}

func (p *publisher) sendConn(up bool) {
	select {
	case p.conn <- up:
	case <-p.done:
	}
}

func (p *publisher) onMessage(_ mqtt.Client, msg mqtt.Message) {
	if msg.Topic() != p.ackTopic {
		p.log.Debug("ignored message on unexpected topic", "topic", msg.Topic())
		return
	}
	a, err := telemetry.DecodeAck(msg.Payload())
	if err != nil {
		p.m.acksIgnored.WithLabelValues("invalid").Inc()
		p.log.Warn("ignored invalid ack", "err", err)
		return
	}
	select {
	case p.acks <- a.Seq:
	case <-p.done:
	}
}

// run connects and publishes until ctx ends.
func (p *publisher) run(ctx context.Context) {
	defer close(p.done)
	p.client.Connect() // with ConnectRetry it keeps trying in the background
	tick := time.NewTicker(min(max(p.ackTimeout/4, 10*time.Millisecond), time.Second))
	defer tick.Stop()
	lastSync := p.now()
	for {
		select {
		case <-ctx.Done():
			p.client.Disconnect(250)
			p.connected.Store(false)
			p.m.connected.Set(0)
			if err := p.wal.SyncAcks(); err != nil {
				p.log.Error("cannot persist acks", "err", err)
			}
			return
		case up := <-p.conn:
			// The handlers run on goroutines of their own, so a late "lost" may follow a
			// newer "connected": trust the client's state for losses.
			if !up && p.client.IsConnectionOpen() {
				continue
			}
			p.up = up
			p.connected.Store(up)
			p.m.connected.Set(b2f(up))
			// Replay everything pending, in order, from the oldest.
			clear(p.inflight)
			p.cursor = 0
			p.m.inflight.Set(0)
		case seq := <-p.acks:
			if p.wal.Ack(seq) {
				p.m.acked.Inc()
			} else {
				p.m.acksIgnored.WithLabelValues("unknown").Inc()
			}
			delete(p.inflight, seq)
		case <-p.appended:
		case <-tick.C:
			p.resendExpired()
			if now := p.now(); now.Sub(lastSync) >= ackSyncInterval {
				lastSync = now
				if err := p.wal.SyncAcks(); err != nil {
					p.log.Error("cannot persist acks", "err", err)
				}
			}
		}
		p.fill()
	}
}

// fill publishes the next pending batches until limit are in flight.
func (p *publisher) fill() {
	for p.up && len(p.inflight) < p.limit {
		e, ok := p.wal.Next(p.cursor)
		if !ok {
			break
		}
		p.cursor = e.Seq
		if _, ok := p.inflight[e.Seq]; ok {
			continue
		}
		if p.send(e.Seq) {
			p.inflight[e.Seq] = p.now()
			p.m.published.Inc()
		}
	}
	p.m.inflight.Set(float64(len(p.inflight)))
}

func (p *publisher) resendExpired() {
	if !p.up {
		return
	}
	now := p.now()
	for seq, sent := range p.inflight {
		if now.Sub(sent) < p.ackTimeout {
			continue
		}
		if !p.send(seq) {
			delete(p.inflight, seq)
			continue
		}
		p.inflight[seq] = now
		p.m.resent.Inc()
		p.log.Debug("batch resent, no ack within timeout", "seq", seq, "ack_timeout", p.ackTimeout)
	}
}

// send publishes batch seq; false if it is no longer in the WAL or cannot be read.
func (p *publisher) send(seq uint64) bool {
	b, err := p.wal.Read(seq)
	if errors.Is(err, wal.ErrNotFound) {
		return false // acknowledged or dropped meanwhile
	}
	if err != nil {
		p.log.Error("cannot read batch from wal", "seq", seq, "err", err)
		return false
	}
	b.SentAt = p.clock.Now()
	payload, err := telemetry.EncodeJSON(b)
	if err != nil {
		p.log.Error("cannot encode batch", "seq", seq, "err", err)
		return false
	}
	tok := p.client.Publish(p.topic, 1, false, payload)
	go func() {
		<-tok.Done()
		if err := tok.Error(); err != nil {
			p.log.Debug("publish not confirmed by broker, the ack timeout will resend it", "seq", seq, "err", err)
		}
	}()
	return true
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
