// Package broker is the embedded MQTT broker (mochi-mqtt) with gateway authentication and topic
// ACLs, and Mosquitto password/ACL file generation for an external broker.
//
// Gateways connect with their id as user name and the password they received at creation;
// they may publish only their own readings (parks/{park}/gateways/{id}/readings and
// .../readings/pb) and subscribe only to their own acks (.../acks). Service accounts (the
// collector and other platform parts) may publish and subscribe anything under parks/,
// including shared subscriptions $share/<group>/parks/... Everything else is refused.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Gateways is what the broker needs of the registry (declared here, the consumer side).
type Gateways interface {
	// GetGateway returns the gateway, or an error wrapping registry.ErrNotFound when unknown.
	GetGateway(ctx context.Context, id string) (registry.Gateway, error)
}

// Queue limit defaults. mochi's own defaults (8192 in flight and 8192 pending writes per client,
// one day of message expiry) drop messages behind a slow or absent subscriber.
const (
	DefaultMaxInflight      = math.MaxUint16 // the MQTT packet-identifier space; mochi cannot go higher
	DefaultMaxMessageExpiry = 7 * 24 * time.Hour
	DefaultMaxPacketSize    = 16 << 20
	DefaultWriteTimeout     = 10 * time.Second
)

// StoreFile is the name of the broker's persistence file inside Options.DataDir.
const StoreFile = "mqtt.bolt"

// Options configures a Broker.
type Options struct {
	// Addr is the TCP listen address, e.g. "127.0.0.1:1883"; port 0 picks a free port
	// (Addr reports the bound one).
	Addr string
	// TLS, when set, makes the listener speak MQTT over TLS.
	TLS *tls.Config
	// DataDir keeps sessions, subscriptions, retained messages and in-flight QoS 1/2 messages
	// across restarts (file StoreFile, bbolt, synced on every change). Empty: in memory only.
	DataDir  string
	Gateways Gateways
	// ServiceUsers are the service accounts (the collector and other platform parts) with full
	// access to parks/# and shared subscriptions: user name -> password hash in
	// auth.HashPassword format. A service account shadows a gateway of the same id.
	ServiceUsers map[string]string
	Logger       *slog.Logger

	// The queue limits below count MQTT messages, that is readings batches, not readings.
	// When one is exceeded mochi drops the message for that client; every such drop is logged
	// at warning level and counted in Broker.Dropped.

	// MaxInflight is how many QoS 1/2 messages the broker holds per client: delivered but not
	// yet acknowledged, or queued for an offline persistent session. They are held in memory
	// (and in DataDir), so the worst case is MaxInflight times the batch size per subscriber.
	// 0: DefaultMaxInflight (65535), the most the MQTT packet identifier allows.
	MaxInflight int
	// MaxPendingWrites is the length of each client's write queue: messages routed to a
	// connected client that its socket has not yet taken. An MQTT 3.1.1 client has no receive
	// maximum, so each QoS 1 message to it passes through this queue, and a slow subscriber
	// fills it; it should not be smaller than MaxInflight. Each connection allocates 8 bytes per
	// slot up front (512 KiB at 65535). 0: MaxInflight.
	MaxPendingWrites int
	// MaxMessageExpiry is how long an undelivered message may wait (for an offline persistent
	// session or an unacknowledging subscriber) before it is dropped; MQTT 5 publishers may ask
	// for less. 0: DefaultMaxMessageExpiry (7 days, a holiday week with the collector down);
	// negative: never.
	MaxMessageExpiry time.Duration
	// MaxPacketSize is the largest MQTT packet accepted, in bytes; a batch of a few thousand
	// readings is well under 1 MiB. 0: DefaultMaxPacketSize (16 MiB).
	MaxPacketSize int
	// WriteTimeout bounds one write to a client. mochi writes under the client's lock, which
	// every publisher delivering to that client needs too, so a subscriber that stops reading
	// stalls the publishers (their PUBACKs wait) until the write fails; after WriteTimeout the
	// client is disconnected and a persistent session keeps its messages for its return.
	// 0: DefaultWriteTimeout (10s); negative: no bound.
	WriteTimeout time.Duration
}

func (o *Options) validate() error {
	if o.Addr == "" {
		return errors.New("broker: Addr is required, e.g. 127.0.0.1:1883")
	}
	if o.Gateways == nil {
		return errors.New("broker: Gateways is required")
	}
	for user, hash := range o.ServiceUsers {
		if err := CheckUsername(user); err != nil {
			return fmt.Errorf("broker: service user: %w", err)
		}
		if err := checkHash(hash); err != nil {
			return fmt.Errorf("broker: service user %s: %w (make it with auth.HashPassword or mosquitto_passwd)", user, err)
		}
	}
	if o.MaxInflight < 0 || o.MaxInflight > math.MaxUint16 {
		return fmt.Errorf("broker: MaxInflight %d is outside 0..65535", o.MaxInflight)
	}
	if o.MaxPendingWrites < 0 || o.MaxPendingWrites > 1<<20 {
		return fmt.Errorf("broker: MaxPendingWrites %d is outside 0..1048576", o.MaxPendingWrites)
	}
	if o.MaxPacketSize < 0 || o.MaxPacketSize > 256<<20 {
		return fmt.Errorf("broker: MaxPacketSize %d is outside 0..268435456 (the MQTT maximum)", o.MaxPacketSize)
	}
	return nil
}

// Broker is the embedded MQTT broker.
type Broker struct {
	opts Options
	log  *slog.Logger

	mu     sync.Mutex
	server *mqtt.Server
	hook   *accessHook
	ln     *tcpListener
	cancel context.CancelFunc
	state  int // 0 new, 1 started, 2 closed
}

// New checks opts and returns a broker that is not yet listening.
func New(opts Options) (*Broker, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.MaxInflight == 0 {
		opts.MaxInflight = DefaultMaxInflight
	}
	if opts.MaxPendingWrites == 0 {
		opts.MaxPendingWrites = opts.MaxInflight
	}
	if opts.MaxMessageExpiry == 0 {
		opts.MaxMessageExpiry = DefaultMaxMessageExpiry
	}
	if opts.MaxPacketSize == 0 {
		opts.MaxPacketSize = DefaultMaxPacketSize
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	service := make(map[string]string, len(opts.ServiceUsers))
	for u, h := range opts.ServiceUsers {
		service[u] = h
	}
	opts.ServiceUsers = service
	return &Broker{opts: opts, log: log}, nil
}

func (b *Broker) capabilities() *mqtt.Capabilities {
	c := mqtt.NewDefaultServerCapabilities()
	c.MaximumInflight = uint16(b.opts.MaxInflight)
	c.MaximumClientWritesPending = int32(b.opts.MaxPendingWrites)
	c.MaximumMessageExpiryInterval = int64(b.opts.MaxMessageExpiry / time.Second)
	if b.opts.MaxMessageExpiry < 0 {
		c.MaximumMessageExpiryInterval = 0 // mochi: 0 is no limit
	}
	c.MaximumPacketSize = uint32(b.opts.MaxPacketSize)
	return c
}

// Start opens the store, restores persisted sessions and starts listening; the broker accepts
// connections when Start returns. ctx bounds start-up only: call Close to stop.
func (b *Broker) Start(ctx context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 0 {
		return errors.New("broker: Start called twice or after Close")
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	server := mqtt.New(&mqtt.Options{
		Capabilities:             b.capabilities(),
		Logger:                   b.log,
		ClientNetWriteBufferSize: 64 << 10, // coalesce writes to a backlogged subscriber
		SysTopicResendInterval:   60,       // nobody may read $SYS; don't churn the store each second
	})
	life, cancel := context.WithCancel(context.Background())
	hook := &accessHook{
		log:      b.log,
		gateways: b.opts.Gateways,
		service:  b.opts.ServiceUsers,
		server:   server,
		ctx:      life,
		parks:    make(map[string]string),
	}
	fail := func(err error) error {
		cancel()
		_ = server.Close()
		return err
	}
	if err := server.AddHook(hook, nil); err != nil {
		return fail(fmt.Errorf("broker: add access hook: %w", err))
	}
	if b.opts.DataDir != "" {
		if err := os.MkdirAll(b.opts.DataDir, 0o700); err != nil {
			return fail(fmt.Errorf("broker: create data dir: %w", err))
		}
		path := filepath.Join(b.opts.DataDir, StoreFile)
		err := server.AddHook(newBoltStore(), &bolt.Options{
			Path:    path,
			Options: &bbolt.Options{Timeout: time.Second},
		})
		if errors.Is(err, bolterrors.ErrTimeout) {
			err = fmt.Errorf("%w: the file is locked; is another broker using %s?", err, b.opts.DataDir)
		}
		if err != nil {
			return fail(fmt.Errorf("broker: open store %s: %w", path, err))
		}
	}
	ln := &tcpListener{id: "tcp", addr: b.opts.Addr, tls: b.opts.TLS, writeTimeout: max(b.opts.WriteTimeout, 0)}
	if err := server.AddListener(ln); err != nil {
		return fail(fmt.Errorf("broker: listen on %s: %w", b.opts.Addr, err))
	}
	if err := server.Serve(); err != nil {
		return fail(fmt.Errorf("broker: start: %w", err))
	}
	b.server, b.hook, b.ln, b.cancel = server, hook, ln, cancel
	b.state = 1
	b.log.Info("mqtt broker listening", "addr", ln.Address(), "tls", b.opts.TLS != nil,
		"data_dir", b.opts.DataDir, "max_inflight", b.opts.MaxInflight,
		"max_pending_writes", b.opts.MaxPendingWrites, "max_message_expiry", b.opts.MaxMessageExpiry)
	return nil
}

// Addr returns the bound listen address once started, else the configured one.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ln != nil {
		return b.ln.Address()
	}
	return b.opts.Addr
}

// Dropped returns how many messages the broker has dropped for a client since it started:
// write queue full, in-flight limit reached, expired, or a clean session ended unacknowledged.
func (b *Broker) Dropped() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.server == nil {
		return 0
	}
	return b.hook.dropped.Load() + atomic.LoadInt64(&b.server.Info.InflightDropped)
}

// Close disconnects every client, stops listening and closes the store; persistent sessions
// and their queued messages are kept in DataDir for the next Start. Close is idempotent.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != 1 {
		b.state = 2
		return nil
	}
	b.state = 2
	err := b.server.Close()
	b.cancel()
	return err
}
