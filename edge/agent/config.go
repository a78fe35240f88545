package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/parkcarbon/parkcarbon/edge/device"
	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// Defaults of Config.
const (
	DefaultHTTPAddr     = "127.0.0.1:9102"
	DefaultMaxReadings  = 1000
	DefaultMaxDelay     = time.Second
	DefaultInflight     = 10
	DefaultAckTimeout   = 30 * time.Second
	DefaultWALMaxBytes  = 256 << 20
	DefaultKeepAlive    = 30 * time.Second
	DefaultReconnectMax = 30 * time.Second
	DefaultPollInterval = 15 * time.Second
	DefaultTimeout      = 2 * time.Second

	// MinWALMaxBytes is the smallest WAL bound accepted.
	MinWALMaxBytes = 1 << 20
	// walBytesPerReading is a generous size of one logged reading (meter id, time, value,
	// quality, framing), used to check that a batch fits in the WAL.
	walBytesPerReading = 128
)

// Config is the agent's configuration, read from YAML by LoadConfig.
type Config struct {
	// GatewayID is the id the platform issued for this gateway (e.g. gw-01); it names the
	// MQTT topics and is the default MQTT username and client id.
	GatewayID string `yaml:"gateway_id"`
	// ParkID is the park the gateway belongs to.
	ParkID  string        `yaml:"park_id"`
	Broker  BrokerConfig  `yaml:"broker"`
	WAL     WALConfig     `yaml:"wal"`
	Batch   BatchConfig   `yaml:"batch"`
	Publish PublishConfig `yaml:"publish"`
	// HTTPAddr serves /metrics and /healthz; default 127.0.0.1:9102.
	HTTPAddr string      `yaml:"http_addr"`
	Clock    ClockConfig `yaml:"clock"`
	// Devices are polled each on its own grid. A device's poll_interval defaults to 15s and
	// its timeout to 2s.
	Devices []device.Config `yaml:"devices"`
}

// BrokerConfig is the MQTT connection.
type BrokerConfig struct {
	// URL is tcp://host:port or ssl://host:port.
	URL string `yaml:"url"`
	// Username defaults to the gateway id.
	Username string `yaml:"username"`
	// Password, or PasswordFile holding it (a trailing newline is ignored); not both.
	Password     string    `yaml:"password"`
	PasswordFile string    `yaml:"password_file"`
	TLS          TLSConfig `yaml:"tls"`
	// ClientID defaults to the gateway id. The session is persistent (clean session false),
	// so it must be stable and unique to this gateway.
	ClientID string `yaml:"client_id"`
	// KeepAlive is the MQTT keep-alive; default 30s.
	KeepAlive time.Duration `yaml:"keep_alive"`
	// ReconnectMax caps the exponential back-off between connection attempts; default 30s.
	ReconnectMax time.Duration `yaml:"reconnect_max"`
}

// TLSConfig is the TLS of an ssl:// broker URL.
type TLSConfig struct {
	// CAFile verifies the broker (PEM); empty: the system roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a client certificate (PEM), both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify disables verification of the broker's certificate: tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

func (t TLSConfig) set() bool { return t != TLSConfig{} }

// WALConfig is the on-disk write-ahead log.
type WALConfig struct {
	// Dir holds the log; required. Give every gateway its own.
	Dir string `yaml:"dir"`
	// MaxBytes bounds the log (e.g. 268435456, "256MiB", "1GiB"); default 256MiB. When
	// full, the oldest batches are dropped and counted.
	MaxBytes ByteSize `yaml:"max_bytes"`
}

// BatchConfig is how readings are grouped into batches.
type BatchConfig struct {
	// MaxReadings per batch; default 1000, at most telemetry.MaxReadings.
	MaxReadings int `yaml:"max_readings"`
	// MaxDelay is the longest a reading waits for its batch to fill (real time); default 1s.
	// It applies only with BufferPolls.
	MaxDelay time.Duration `yaml:"max_delay"`
	// BufferPolls gathers the readings of several polls into one batch (up to max_readings, or
	// max_delay) before logging it. Default false: each device's poll is appended to the WAL,
	// and fsynced, as soon as it is read, so a reading is on disk before the agent moves on and
	// survives kill -9 or a power cut. With true, up to max_delay of readings live only in
	// memory; use it for gateways with very many small devices where one fsync per poll is
	// too many.
	BufferPolls bool `yaml:"buffer_polls"`
}

// PublishConfig is the publisher's flow control.
type PublishConfig struct {
	// Inflight is the number of batches published and not yet acknowledged by the collector;
	// default 10. It bounds readings in flight to inflight × batch.max_readings (10,000
	// with the defaults) and the memory they take.
	Inflight int `yaml:"inflight"`
	// AckTimeout resends a batch whose application-level ack has not come (real time);
	// default 30s.
	AckTimeout time.Duration `yaml:"ack_timeout"`
}

// ClockConfig makes the agent run on simulated time: sim = sim_start + (now − real_start) ×
// speed. Readings are stamped and devices polled on the simulated grid; timeouts, batching and
// acks stay in real time. Without sim_start the agent uses real time.
type ClockConfig struct {
	SimStart time.Time `yaml:"sim_start"`
	// RealStart defaults to the agent's start.
	RealStart time.Time `yaml:"real_start"`
	// Speed defaults to 1.
	Speed float64 `yaml:"speed"`
}

// ByteSize is a size in bytes, written in YAML as an integer or with a unit (KiB, MiB, GiB,
// KB, MB, GB).
type ByteSize int64

// UnmarshalYAML implements yaml.Unmarshaler.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseByteSize(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*b = v
	return nil
}

// ParseByteSize parses "1048576", "256MiB", "1 GiB", "500MB".
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("%q is not a size such as 268435456, 256MiB or 1GiB", s)
	}
	return ByteSize(n * mult), nil
}

// LoadConfig reads a YAML configuration strictly (unknown keys are errors), applies the
// defaults and validates it.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	c, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig is LoadConfig on bytes.
func ParseConfig(data []byte) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return Config{}, err
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, errors.New("more than one YAML document: put all settings in one")
	}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// ApplyDefaults fills unset settings with their defaults.
func (c *Config) ApplyDefaults() {
	setDefault(&c.Broker.Username, c.GatewayID)
	setDefault(&c.Broker.ClientID, c.GatewayID)
	setDefault(&c.Broker.KeepAlive, DefaultKeepAlive)
	setDefault(&c.Broker.ReconnectMax, DefaultReconnectMax)
	setDefault(&c.WAL.MaxBytes, DefaultWALMaxBytes)
	setDefault(&c.Batch.MaxReadings, DefaultMaxReadings)
	setDefault(&c.Batch.MaxDelay, DefaultMaxDelay)
	setDefault(&c.Publish.Inflight, DefaultInflight)
	setDefault(&c.Publish.AckTimeout, DefaultAckTimeout)
	setDefault(&c.HTTPAddr, DefaultHTTPAddr)
	if !c.Clock.SimStart.IsZero() {
		setDefault(&c.Clock.Speed, 1)
	}
	for i := range c.Devices {
		setDefault(&c.Devices[i].PollInterval, DefaultPollInterval)
		setDefault(&c.Devices[i].Timeout, DefaultTimeout)
	}
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Validate checks the configuration (after ApplyDefaults) and lists every problem found.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.GatewayID == "" {
		add("gateway_id is required: the id the platform issued for this gateway, e.g. gw-01")
	}
	if c.ParkID == "" {
		add("park_id is required: the id of the park the gateway belongs to, e.g. p1")
	}
	if c.GatewayID != "" && c.ParkID != "" {
		if _, err := telemetry.ParseTopic(telemetry.ReadingsTopic(c.ParkID, c.GatewayID)); err != nil {
			add("gateway_id %q or park_id %q is not a valid id: use lower-case letters, digits, '.', '_' and '-', at most 64, starting with a letter or digit", c.GatewayID, c.ParkID)
		}
	}

	b := c.Broker
	if b.URL == "" {
		add("broker.url is required, e.g. tcp://broker.example:1883 or ssl://broker.example:8883")
	} else if u, err := url.Parse(b.URL); err != nil || u.Host == "" || (u.Scheme != "tcp" && u.Scheme != "ssl") {
		add("broker.url %q must be tcp://host:port or ssl://host:port", b.URL)
	} else {
		if _, _, err := net.SplitHostPort(u.Host); err != nil {
			add("broker.url %q needs a port, e.g. :1883 or :8883", b.URL)
		}
		if u.Scheme == "tcp" && b.TLS.set() {
			add("broker.tls is set but broker.url %q is tcp://: use ssl:// for TLS", b.URL)
		}
	}
	if b.Password != "" && b.PasswordFile != "" {
		add("broker.password and broker.password_file are both set: keep one")
	}
	if (b.TLS.CertFile == "") != (b.TLS.KeyFile == "") {
		add("broker.tls.cert_file and broker.tls.key_file go together: set both for a client certificate, or neither")
	}
	if b.KeepAlive < time.Second {
		add("broker.keep_alive %v is too short: use at least 1s", b.KeepAlive)
	}
	if b.ReconnectMax < 10*time.Millisecond {
		add("broker.reconnect_max %v is too short: use e.g. 30s", b.ReconnectMax)
	}

	if c.WAL.Dir == "" {
		add("wal.dir is required: a directory kept across restarts, e.g. /var/lib/parkcarbon-edge-agent/wal")
	}
	if c.WAL.MaxBytes < MinWALMaxBytes {
		add("wal.max_bytes %d is below the minimum of %d (1MiB)", c.WAL.MaxBytes, MinWALMaxBytes)
	} else if need := ByteSize(4 * walBytesPerReading * c.Batch.MaxReadings); c.WAL.MaxBytes < need {
		add("wal.max_bytes %d is too small for batches of %d readings: use at least %d, or lower batch.max_readings", c.WAL.MaxBytes, c.Batch.MaxReadings, need)
	}
	if c.Batch.MaxReadings < 1 || c.Batch.MaxReadings > telemetry.MaxReadings {
		add("batch.max_readings %d must be between 1 and %d", c.Batch.MaxReadings, telemetry.MaxReadings)
	}
	if c.Batch.MaxDelay <= 0 {
		add("batch.max_delay %v must be positive, e.g. 1s", c.Batch.MaxDelay)
	}
	if c.Publish.Inflight < 1 || c.Publish.Inflight > 1000 {
		add("publish.inflight %d must be between 1 and 1000 batches", c.Publish.Inflight)
	}
	if c.Publish.AckTimeout <= 0 {
		add("publish.ack_timeout %v must be positive, e.g. 30s", c.Publish.AckTimeout)
	}
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		add("http_addr %q must be host:port, e.g. 127.0.0.1:9102", c.HTTPAddr)
	}

	clk := c.Clock
	if clk.SimStart.IsZero() {
		if !clk.RealStart.IsZero() || clk.Speed != 0 {
			add("clock.real_start and clock.speed need clock.sim_start; remove the clock section to run on real time")
		}
	} else if clk.Speed <= 0 || math.IsInf(clk.Speed, 0) || math.IsNaN(clk.Speed) {
		add("clock.speed %v must be a positive number (1 = real time, 60 = a minute per second)", clk.Speed)
	}

	if len(c.Devices) == 0 {
		add("devices: configure at least one device to poll")
	}
	names := map[string]bool{}
	meters := map[string]string{}
	for i, d := range c.Devices {
		where := fmt.Sprintf("devices[%d]", i)
		if d.Name != "" {
			where = fmt.Sprintf("device %q", d.Name)
		}
		switch {
		case d.Name == "":
			add("%s: name is required", where)
		case names[d.Name]:
			add("%s: the name is used twice", where)
		}
		names[d.Name] = true
		if d.Protocol == "" {
			add("%s: protocol is required (%s or %s)", where, device.ModbusTCP, device.DLT645TCP)
		}
		if d.PollInterval < time.Second || d.PollInterval%time.Millisecond != 0 {
			add("%s: poll_interval %v must be at least 1s, in whole milliseconds", where, d.PollInterval)
		}
		if d.Timeout < 0 {
			add("%s: timeout %v cannot be negative", where, d.Timeout)
		}
		var ids []string
		for _, p := range d.Points {
			ids = append(ids, p.Meter)
		}
		for _, m := range d.Meters {
			ids = append(ids, m.Meter)
		}
		for _, m := range ids {
			switch {
			case m == "":
				add("%s: a point or meter has no meter id", where)
			case meters[m] != "":
				add("%s: meter %q is also read by %s: a meter's readings must come from one place", where, m, meters[m])
			default:
				meters[m] = where
			}
		}
	}
	return errors.Join(errs...)
}
