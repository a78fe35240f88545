package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/parkcarbon/parkcarbon/edge/device"
)

// TestExampleConfig keeps deploy/systemd/edge-agent.yaml valid.
func TestExampleConfig(t *testing.T) {
	c, err := LoadConfig("../../deploy/systemd/edge-agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if c.GatewayID != "gw-01" || c.Broker.Username != "gw-01" || c.Broker.ClientID != "gw-01" ||
		c.WAL.MaxBytes != 256<<20 || len(c.Devices) != 2 || c.Devices[1].PollInterval != time.Minute ||
		c.Devices[0].Points[0].Register != 0 || c.Devices[0].Points[2].Scale != 0.01 ||
		c.Devices[1].Meters[0].Address != "000000000001" || c.Clock.SimStart != (time.Time{}) {
		t.Fatalf("example decoded as %+v", c)
	}
}

const minimal = `
gateway_id: gw-01
park_id: p1
broker: {url: "tcp://127.0.0.1:1883"}
wal: {dir: /var/lib/x}
devices:
  - {name: d1, protocol: modbus-tcp, address: "10.0.0.1:502", points: [{meter: m1, register: 0, type: uint16}]}
`

func TestConfigDefaults(t *testing.T) {
	c, err := ParseConfig([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	want := Config{
		GatewayID: "gw-01", ParkID: "p1",
		Broker: BrokerConfig{URL: "tcp://127.0.0.1:1883", Username: "gw-01", ClientID: "gw-01", KeepAlive: 30 * time.Second, ReconnectMax: 30 * time.Second},
		WAL:    WALConfig{Dir: "/var/lib/x", MaxBytes: 256 << 20},
		Batch:  BatchConfig{MaxReadings: 1000, MaxDelay: time.Second},
		Publish: PublishConfig{
			Inflight: 10, AckTimeout: 30 * time.Second,
		},
		HTTPAddr: "127.0.0.1:9102",
	}
	d := c.Devices[0]
	c.Devices = nil
	if c.GatewayID != want.GatewayID || c.Broker != want.Broker || c.WAL != want.WAL || c.Batch != want.Batch || c.Publish != want.Publish || c.HTTPAddr != want.HTTPAddr {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if d.PollInterval != 15*time.Second || d.Timeout != 2*time.Second {
		t.Fatalf("device defaults: %+v", d)
	}
}

func TestConfigClock(t *testing.T) {
	simStart := time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		yaml      string
		realStart time.Time
		speed     float64
	}{
		{`clock: {sim_start: "2026-11-22T08:00:00+08:00", speed: 60}`, time.Time{}, 60},
		{"clock:\n  sim_start: 2026-11-22T08:00:00+08:00\n  real_start: 2026-01-01T00:00:00Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 1},
	} {
		c, err := ParseConfig([]byte(minimal + tc.yaml + "\n"))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if !c.Clock.SimStart.Equal(simStart) || c.Clock.Speed != tc.speed || !c.Clock.RealStart.Equal(tc.realStart) {
			t.Errorf("%s: clock %+v", tc.yaml, c.Clock)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		yaml string // appended to minimal (later keys override earlier ones is not YAML: use edits)
		edit func(c *Config)
		want []string
	}{
		{name: "unknown key", yaml: minimal + "bogus: 1\n", want: []string{"field bogus not found"}},
		{name: "unknown nested key", yaml: strings.Replace(minimal, "wal: {dir: /var/lib/x}", "wal: {dir: /var/lib/x, size: 3}", 1), want: []string{"field size not found"}},
		{name: "two documents", yaml: minimal + "---\ngateway_id: x\n", want: []string{"more than one YAML document"}},
		{name: "bad size", yaml: strings.Replace(minimal, "wal: {dir: /var/lib/x}", "wal: {dir: /var/lib/x, max_bytes: lots}", 1), want: []string{`"lots" is not a size`}},
		{name: "bad duration", yaml: minimal + "batch: {max_delay: soon}\n", want: []string{"soon"}},
		{name: "empty", yaml: "", want: []string{"gateway_id is required", "park_id is required", "broker.url is required", "wal.dir is required", "configure at least one device"}},
		{name: "bad ids", edit: func(c *Config) { c.GatewayID = "GW 01" }, want: []string{`gateway_id "GW 01" or park_id "p1" is not a valid id`}},
		{name: "scheme", edit: func(c *Config) { c.Broker.URL = "mqtt://h:1883" }, want: []string{"must be tcp://host:port or ssl://host:port"}},
		{name: "no port", edit: func(c *Config) { c.Broker.URL = "tcp://h" }, want: []string{"needs a port"}},
		{name: "tls on tcp", edit: func(c *Config) { c.Broker.TLS.CAFile = "/ca.pem" }, want: []string{"use ssl:// for TLS"}},
		{name: "cert without key", edit: func(c *Config) { c.Broker.URL = "ssl://h:8883"; c.Broker.TLS.CertFile = "/c.pem" }, want: []string{"cert_file and broker.tls.key_file go together"}},
		{name: "two passwords", edit: func(c *Config) { c.Broker.Password = "x"; c.Broker.PasswordFile = "/p" }, want: []string{"keep one"}},
		{name: "small wal", edit: func(c *Config) { c.WAL.MaxBytes = 1000 }, want: []string{"below the minimum"}},
		{name: "wal too small for batches", edit: func(c *Config) { c.WAL.MaxBytes = MinWALMaxBytes; c.Batch.MaxReadings = 10000 }, want: []string{"too small for batches of 10000 readings"}},
		{name: "batch too big", edit: func(c *Config) { c.Batch.MaxReadings = 20000; c.WAL.MaxBytes = 1 << 30 }, want: []string{"batch.max_readings 20000"}},
		{name: "inflight", edit: func(c *Config) { c.Publish.Inflight = -1 }, want: []string{"publish.inflight -1"}},
		{name: "ack timeout", edit: func(c *Config) { c.Publish.AckTimeout = -time.Second }, want: []string{"publish.ack_timeout"}},
		{name: "http addr", edit: func(c *Config) { c.HTTPAddr = "9102" }, want: []string{"http_addr"}},
		{name: "speed without sim", edit: func(c *Config) { c.Clock.Speed = 10 }, want: []string{"need clock.sim_start"}},
		{name: "negative speed", edit: func(c *Config) { c.Clock.SimStart = time.Now(); c.Clock.Speed = -1 }, want: []string{"clock.speed -1"}},
		{name: "device without name", edit: func(c *Config) { c.Devices[0].Name = "" }, want: []string{"devices[0]: name is required"}},
		{name: "duplicate device", edit: func(c *Config) { c.Devices = append(c.Devices, c.Devices[0]) }, want: []string{`device "d1": the name is used twice`, `meter "m1" is also read by device "d1"`}},
		{name: "no protocol", edit: func(c *Config) { c.Devices[0].Protocol = "" }, want: []string{"protocol is required"}},
		{name: "short interval", edit: func(c *Config) { c.Devices[0].PollInterval = 500 * time.Millisecond }, want: []string{"poll_interval 500ms must be at least 1s"}},
		{name: "meter without id", edit: func(c *Config) { c.Devices[0].Meters = []device.DLT645Meter{{Address: "1"}} }, want: []string{"has no meter id"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.edit != nil {
				var c Config
				if c, err = ParseConfig([]byte(minimal)); err != nil {
					t.Fatal(err)
				}
				tc.edit(&c)
				err = c.Validate()
			} else {
				_, err = ParseConfig([]byte(tc.yaml))
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "256MiB": 256 << 20, "1 GiB": 1 << 30, "500MB": 500e6, "4KiB": 4096, "0": 0} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5GiB", "10TiB", "9999999999GiB", "MiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) accepted", in)
		}
	}
}
