package broker

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// fakeGateways is the registry as the broker sees it.
type fakeGateways struct {
	mu    sync.Mutex
	gws   map[string]registry.Gateway
	calls atomic.Int64
}

func (f *fakeGateways) GetGateway(_ context.Context, id string) (registry.Gateway, error) {
	f.calls.Add(1)
	if id == "registry-down" {
		return registry.Gateway{}, errors.New("sql: database is closed")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	g, ok := f.gws[id]
	if !ok {
		return registry.Gateway{}, fmt.Errorf("gateway %s: %w", id, registry.ErrNotFound)
	}
	return g, nil
}

func (f *fakeGateways) add(t testing.TB, park, id, password string) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.gws == nil {
		f.gws = make(map[string]registry.Gateway)
	}
	f.gws[id] = registry.Gateway{ID: id, ParkID: park, Name: id, PasswordHash: mustHash(t, password)}
}

func mustHash(t testing.TB, password string) string {
	t.Helper()
	h, err := auth.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// fixture: gateways gw1 and gw2 in park p1, gw3 in park p2, service account "collector".
const (
	gw1Pass       = "gw1-secret"
	gw2Pass       = "gw2-secret"
	gw3Pass       = "gw3-secret"
	collectorPass = "collector-secret"
	sharedFilter  = "$share/collectors/parks/+/gateways/+/readings"
)

func newFixture(t testing.TB) (*fakeGateways, map[string]string) {
	f := &fakeGateways{}
	f.add(t, "p1", "gw1", gw1Pass)
	f.add(t, "p1", "gw2", gw2Pass)
	f.add(t, "p2", "gw3", gw3Pass)
	return f, map[string]string{"collector": mustHash(t, collectorPass)}
}

func testLogger(t testing.TB, level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: level}))
}

// startBroker starts a broker on a free loopback port and closes it when the test ends.
func startBroker(t testing.TB, opts Options) *Broker {
	t.Helper()
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = testLogger(t, slog.LevelInfo)
	}
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type clientOpts struct {
	user, password, id string
	persistent         bool                // CleanSession false
	handler            paho.MessageHandler // messages of any subscription, including restored ones
	onLost             func(error)
	scheme             string // default tcp
	configure          func(*paho.ClientOptions)
}

// dial connects a paho MQTT 3.1.1 client and disconnects it when the test ends.
func dial(t testing.TB, addr string, o clientOpts) (paho.Client, error) {
	t.Helper()
	scheme := o.scheme
	if scheme == "" {
		scheme = "tcp"
	}
	opts := paho.NewClientOptions().
		AddBroker(scheme + "://" + addr).
		SetClientID(o.id).
		SetUsername(o.user).
		SetPassword(o.password).
		SetCleanSession(!o.persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).
		SetKeepAlive(30 * time.Second).
		SetOrderMatters(true)
	if o.handler != nil {
		opts.SetDefaultPublishHandler(o.handler)
	}
	if o.onLost != nil {
		opts.SetConnectionLostHandler(func(_ paho.Client, err error) { o.onLost(err) })
	}
	if o.configure != nil {
		o.configure(opts)
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func mustDial(t testing.TB, addr string, o clientOpts) paho.Client {
	t.Helper()
	c, err := dial(t, addr, o)
	if err != nil {
		t.Fatalf("connect %s as %s: %v", o.id, o.user, err)
	}
	return c
}

func wait(t testing.TB, tok paho.Token, what string) {
	t.Helper()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("%s: timed out", what)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// subscribe subscribes and returns the granted QoS (0x80: refused).
func subscribe(t testing.TB, c paho.Client, filter string, qos byte) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatalf("subscribe %s: timed out", filter)
	}
	// paho keys the result by the filter without $share/<group>/, so take the only entry.
	res := tok.(*paho.SubscribeToken).Result()
	if len(res) != 1 {
		t.Fatalf("subscribe %s: results %v (err %v)", filter, res, tok.Error())
	}
	for _, code := range res {
		return code
	}
	return 0
}

type message struct {
	topic   string
	payload string
}

// inbox collects delivered messages.
type inbox struct {
	ch chan message
}

func newInbox() *inbox { return &inbox{ch: make(chan message, 100000)} }

func (in *inbox) handler(_ paho.Client, m paho.Message) {
	in.ch <- message{m.Topic(), string(m.Payload())}
}

// until receives messages until one has payload want, and returns those before it.
func (in *inbox) until(t testing.TB, want string) []message {
	t.Helper()
	var before []message
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m := <-in.ch:
			if m.payload == want {
				return before
			}
			before = append(before, m)
		case <-timeout:
			t.Fatalf("message %q not delivered; got %v", want, before)
		}
	}
}

func TestConnectAuthentication(t *testing.T) {
	gws, service := newFixture(t)
	b := startBroker(t, Options{Gateways: gws, ServiceUsers: service})

	// A persistent session of the collector, to check a gateway cannot take it over.
	c := mustDial(t, b.Addr(), clientOpts{user: "collector", password: collectorPass, id: "collector-1", persistent: true})
	c.Disconnect(100)

	tests := []struct {
		name     string
		user     string
		password string
		id       string
		wantErr  error
	}{
		{"anonymous", "", "", "anon", packets.ErrorRefusedBadUsernameOrPassword},
		{"password without user", "", gw1Pass, "anon2", packets.ErrorRefusedBadUsernameOrPassword},
		{"gateway wrong password", "gw1", "wrong", "gw1", packets.ErrorRefusedBadUsernameOrPassword},
		{"gateway empty password", "gw1", "", "gw1", packets.ErrorRefusedBadUsernameOrPassword},
		{"gateway other gateway's password", "gw1", gw2Pass, "gw1", packets.ErrorRefusedBadUsernameOrPassword},
		{"unknown gateway", "gw9", gw1Pass, "gw9", packets.ErrorRefusedBadUsernameOrPassword},
		{"service wrong password", "collector", gw1Pass, "collector-x", packets.ErrorRefusedBadUsernameOrPassword},
		{"gateway takes over the collector's session", "gw1", gw1Pass, "collector-1", packets.ErrorRefusedBadUsernameOrPassword},
		{"gateway right password", "gw1", gw1Pass, "gw1", nil},
		{"gateway with any client id", "gw2", gw2Pass, "edge-agent-7", nil},
		{"service right password", "collector", collectorPass, "collector-2", nil},
		{"service resumes its own session", "collector", collectorPass, "collector-1", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := dial(t, b.Addr(), clientOpts{user: tt.user, password: tt.password, id: tt.id, persistent: tt.id == "collector-1"})
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("connect: got %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				c.Disconnect(100)
			}
		})
	}

	t.Run("new gateway works at once", func(t *testing.T) {
		if _, err := dial(t, b.Addr(), clientOpts{user: "gw-new", password: "fresh", id: "gw-new"}); !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
			t.Fatalf("before creation: got %v, want refused", err)
		}
		gws.add(t, "p1", "gw-new", "fresh")
		mustDial(t, b.Addr(), clientOpts{user: "gw-new", password: "fresh", id: "gw-new"})
	})
}

func TestRights(t *testing.T) {
	gws, service := newFixture(t)
	b := startBroker(t, Options{Gateways: gws, ServiceUsers: service})
	testRights(t, b.Addr(), true)

	t.Run("qos 1 to another gateway's topic disconnects", func(t *testing.T) {
		all := newInbox()
		watcher := mustDial(t, b.Addr(), clientOpts{user: "collector", password: collectorPass, id: "watcher-2", handler: all.handler})
		if code := subscribe(t, watcher, "parks/#", 1); code != 1 {
			t.Fatalf("watcher subscription: granted %#x", code)
		}
		lost := make(chan error, 1)
		gw2 := mustDial(t, b.Addr(), clientOpts{user: "gw2", password: gw2Pass, id: "gw2",
			onLost: func(err error) { lost <- err }})
		gw2.Publish("parks/p1/gateways/gw1/readings", 1, false, "forged")
		select {
		case err := <-lost: // MQTT 3.1.1 has no negative PUBACK: mochi drops the connection
			t.Logf("forger disconnected: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatal("gateway still connected after an unauthorised QoS 1 publish")
		}
		gw := mustDial(t, b.Addr(), clientOpts{user: "gw1", password: gw1Pass, id: "gw1-again"})
		wait(t, gw.Publish("parks/p1/gateways/gw1/readings", 1, false, "after-forged"), "publish")
		if got := all.until(t, "after-forged"); len(got) != 0 {
			t.Errorf("delivered %v", got)
		}
	})
}

// testRights checks the rights every broker the platform uses must grant, embedded or
// Mosquitto, against the fixture of newFixture. subackRefuses: the broker answers a refused
// subscription with SUBACK 0x80 (else only delivery is checked).
func testRights(t *testing.T, addr string, subackRefuses bool) {
	// The collector's shared subscription (DESIGN.md §4) and a service account watching all of parks/.
	shared := newInbox()
	col := mustDial(t, addr, clientOpts{user: "collector", password: collectorPass, id: "collector-1", handler: shared.handler})
	if code := subscribe(t, col, sharedFilter, 1); code != 1 {
		t.Fatalf("collector shared subscription: granted %#x", code)
	}
	all := newInbox()
	watcher := mustDial(t, addr, clientOpts{user: "collector", password: collectorPass, id: "watcher", handler: all.handler})
	if code := subscribe(t, watcher, "parks/#", 1); code != 1 {
		t.Fatalf("watcher subscription: granted %#x", code)
	}
	gw := mustDial(t, addr, clientOpts{user: "gw1", password: gw1Pass, id: "gw1"})

	t.Run("connect", func(t *testing.T) {
		tests := []struct {
			name, user, password string
			wantOK               bool
		}{
			{"anonymous", "", "", false},
			{"gateway wrong password", "gw1", "wrong", false},
			{"gateway other gateway's password", "gw1", gw2Pass, false},
			{"unknown gateway", "gw9", gw1Pass, false},
			{"service wrong password", "collector", gw1Pass, false},
			{"gateway", "gw2", gw2Pass, true},
			{"service", "collector", collectorPass, true},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				c, err := dial(t, addr, clientOpts{user: tt.user, password: tt.password, id: fmt.Sprintf("connect-%d", i)})
				if tt.wantOK {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					c.Disconnect(100)
					return
				}
				if !errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) && !errors.Is(err, packets.ErrorRefusedNotAuthorised) {
					t.Fatalf("got %v, want refused as bad user name or password, or not authorised", err)
				}
			})
		}
	})

	t.Run("publish", func(t *testing.T) {
		group := t // outlives the cases: a reconnected gateway must too
		tests := []struct {
			name        string
			topic       string
			wantAllowed bool
			wantShared  bool // delivered to the collector's shared subscription
		}{
			{"own readings", "parks/p1/gateways/gw1/readings", true, true},
			{"own protobuf readings", "parks/p1/gateways/gw1/readings/pb", true, false},
			{"other gateway same park", "parks/p1/gateways/gw2/readings", false, false},
			{"own id other park", "parks/p2/gateways/gw1/readings", false, false},
			{"other park's gateway", "parks/p2/gateways/gw3/readings", false, false},
			{"own acks", "parks/p1/gateways/gw1/acks", false, false},
			{"other topic under own prefix", "parks/p1/gateways/gw1/status", false, false},
			{"below readings", "parks/p1/gateways/gw1/readings/x", false, false},
			{"park root", "parks/p1", false, false},
			{"outside parks", "gw1/readings", false, false},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				// QoS 0 so a refusal does not disconnect the gateway (mochi does that for
				// QoS 1 under MQTT 3.1.1); then a QoS 1 sentinel on the gateway's own topic:
				// a broker handles one connection's packets in order, so a delivered test
				// message would arrive before the sentinel.
				payload := fmt.Sprintf("msg-%d", i)
				sentinel := fmt.Sprintf("sentinel-%d", i)
				wait(t, gw.Publish(tt.topic, 0, false, payload), "publish")
				tok := gw.Publish("parks/p1/gateways/gw1/readings", 1, false, sentinel)
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					// Mosquitto 2.0.11 with max_queued_messages 0 (unlimited) closes the
					// connection of a client whose publish its ACL denies.
					t.Logf("the broker closed the gateway's connection after publishing to %s (%v)", tt.topic, tok.Error())
					gw = mustDial(group, addr, clientOpts{user: "gw1", password: gw1Pass, id: "gw1"})
					wait(t, gw.Publish("parks/p1/gateways/gw1/readings", 1, false, sentinel), "publish sentinel")
				}

				got := all.until(t, sentinel)
				want := []message(nil)
				if tt.wantAllowed {
					want = []message{{tt.topic, payload}}
				}
				if !slices.Equal(got, want) {
					t.Errorf("parks/# subscriber got %v, want %v", got, want)
				}
				gotShared := shared.until(t, sentinel)
				want = nil
				if tt.wantShared {
					want = []message{{tt.topic, payload}}
				}
				if !slices.Equal(gotShared, want) {
					t.Errorf("shared subscriber got %v, want %v", gotShared, want)
				}
			})
		}
	})

	t.Run("subscribe", func(t *testing.T) {
		const refused = 0x80
		tests := []struct {
			name    string
			service bool // else gateway gw1
			filter  string
			want    byte
			// probe is a topic matching a refused filter; the test publishes to it and
			// checks that nothing arrives (Mosquitto grants refused filters in SUBACK).
			probe string
		}{
			{"gateway own acks", false, "parks/p1/gateways/gw1/acks", 1, ""},
			{"gateway other gateway's acks", false, "parks/p1/gateways/gw2/acks", refused, "parks/p1/gateways/gw2/acks"},
			{"gateway own id in other park", false, "parks/p2/gateways/gw1/acks", refused, "parks/p2/gateways/gw1/acks"},
			{"gateway acks wildcard", false, "parks/p1/gateways/+/acks", refused, "parks/p1/gateways/gw2/acks"},
			{"gateway own subtree", false, "parks/p1/gateways/gw1/#", refused, "parks/p1/gateways/gw1/readings"},
			{"gateway own readings", false, "parks/p1/gateways/gw1/readings", refused, "parks/p1/gateways/gw1/readings"},
			{"gateway everything", false, "#", refused, "parks/p2/gateways/gw3/acks"},
			{"service shared readings", true, sharedFilter, 1, ""},
			{"service shared protobuf readings", true, "$share/collectors/parks/+/gateways/+/readings/pb", 1, ""},
			{"service parks subtree", true, "parks/#", 1, ""},
			{"service one gateway's acks", true, "parks/p1/gateways/gw1/acks", 1, ""},
			{"service everything", true, "#", refused, ""},
			{"service shared everything", true, "$share/collectors/#", refused, ""},
			{"service sys", true, "$SYS/#", refused, ""},
			{"service outside parks", true, "other/topic", refused, ""},
			{"service parks lookalike", true, "parksx/#", refused, ""},
		}
		for i, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				in := newInbox()
				o := clientOpts{user: "gw1", password: gw1Pass, id: fmt.Sprintf("gw1-sub-%d", i), handler: in.handler}
				if tt.service {
					o.user, o.password = "collector", collectorPass
				}
				c := mustDial(t, addr, o)
				got := subscribe(t, c, tt.filter, 1)
				if got == tt.want {
					if tt.want == refused || tt.probe == "" {
						return
					}
				} else if tt.want != refused || subackRefuses {
					t.Fatalf("subscribe %s: granted %#x, want %#x", tt.filter, got, tt.want)
				}
				if tt.probe == "" {
					t.Logf("subscribe %s: granted %#x (the broker checks read access at delivery)", tt.filter, got)
					return
				}
				if code := subscribe(t, c, "parks/p1/gateways/gw1/acks", 1); code != 1 {
					t.Fatalf("subscribe own acks: granted %#x", code)
				}
				sentinel := fmt.Sprintf("sub-sentinel-%d", i)
				wait(t, col.Publish(tt.probe, 1, false, "probe"), "publish probe")
				wait(t, col.Publish("parks/p1/gateways/gw1/acks", 1, false, sentinel), "publish sentinel")
				if msgs := in.until(t, sentinel); len(msgs) != 0 {
					t.Errorf("refused filter %s delivered %v", tt.filter, msgs)
				}
			})
		}
	})

	t.Run("acks reach their gateway only", func(t *testing.T) {
		acks := newInbox()
		gw1 := mustDial(t, addr, clientOpts{user: "gw1", password: gw1Pass, id: "gw1-acks", handler: acks.handler})
		if code := subscribe(t, gw1, "parks/p1/gateways/gw1/acks", 1); code != 1 {
			t.Fatalf("subscribe own acks: %#x", code)
		}
		wait(t, col.Publish("parks/p1/gateways/gw2/acks", 1, false, `{"seq":6}`), "publish other ack")
		wait(t, col.Publish("parks/p1/gateways/gw1/acks", 1, false, `{"seq":7}`), "publish ack")
		if got := acks.until(t, `{"seq":7}`); len(got) != 0 {
			t.Errorf("unexpected messages %v", got)
		}
	})
}

func TestOptionsValidation(t *testing.T) {
	gws, service := newFixture(t)
	tests := []struct {
		name string
		opts Options
	}{
		{"no addr", Options{Gateways: gws}},
		{"no gateways", Options{Addr: "127.0.0.1:0"}},
		{"bad service user name", Options{Addr: "127.0.0.1:0", Gateways: gws, ServiceUsers: map[string]string{"a b": service["collector"]}}},
		{"plain-text service password", Options{Addr: "127.0.0.1:0", Gateways: gws, ServiceUsers: map[string]string{"collector": "secret"}}},
		{"inflight above packet ids", Options{Addr: "127.0.0.1:0", Gateways: gws, MaxInflight: 70000}},
		{"negative packet size", Options{Addr: "127.0.0.1:0", Gateways: gws, MaxPacketSize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.opts); err == nil {
				t.Fatal("New accepted invalid options")
			}
		})
	}
}

// rawConnect sends a hand-built CONNECT of protocol level version (4: MQTT 3.1.1, 5: MQTT 5)
// and returns the CONNACK return or reason code.
func rawConnect(t *testing.T, addr string, version byte, user, password string) byte {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	str := func(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }
	flags := byte(0x02) // clean start
	if user != "" {
		flags |= 0x80
	}
	if password != "" {
		flags |= 0x40
	}
	body := append(str("MQTT"), version, flags, 0, 60)
	if version == 5 {
		body = append(body, 0) // no properties
	}
	body = append(body, str("raw-client")...)
	if user != "" {
		body = append(body, str(user)...)
	}
	if password != "" {
		body = append(body, str(password)...)
	}
	pkt := append([]byte{0x10, byte(len(body))}, body...) // short packets: one length byte
	if _, err := conn.Write(pkt); err != nil {
		t.Fatal(err)
	}
	head := make([]byte, 4) // type, remaining length, ack flags, code
	if _, err := io.ReadFull(conn, head); err != nil {
		t.Fatalf("read connack: %v", err)
	}
	if head[0] != 0x20 {
		t.Fatalf("got packet type %#x, want CONNACK", head[0])
	}
	return head[3]
}

func TestConnackReasonCodes(t *testing.T) {
	gws, service := newFixture(t)
	b := startBroker(t, Options{Gateways: gws, ServiceUsers: service})
	tests := []struct {
		name     string
		version  byte
		user     string
		password string
		want     byte
	}{
		{"3.1.1 anonymous", 4, "", "", 0x04},
		{"3.1.1 wrong password", 4, "gw1", "wrong", 0x04},
		{"3.1.1 unknown gateway", 4, "gw9", "x", 0x04},
		{"3.1.1 accepted", 4, "gw1", gw1Pass, 0x00},
		{"3.1.1 registry down", 4, "registry-down", "x", 0x03},
		{"5 registry down", 5, "registry-down", "x", 0x88},
		{"5 anonymous", 5, "", "", 0x86},
		{"5 wrong password", 5, "gw1", "wrong", 0x86},
		{"5 unknown gateway", 5, "gw9", "x", 0x86},
		{"5 service wrong password", 5, "collector", "wrong", 0x86},
		{"5 accepted", 5, "collector", collectorPass, 0x00},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rawConnect(t, b.Addr(), tt.version, tt.user, tt.password); got != tt.want {
				t.Errorf("CONNACK code %#x, want %#x", got, tt.want)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "parkcarbon test broker"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)

	gws, service := newFixture(t)
	b := startBroker(t, Options{Gateways: gws, ServiceUsers: service, TLS: &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS12,
	}})
	c := mustDial(t, b.Addr(), clientOpts{user: "gw1", password: gw1Pass, id: "gw1", scheme: "tls",
		configure: func(o *paho.ClientOptions) { o.SetTLSConfig(&tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}) }})
	if code := subscribe(t, c, "parks/p1/gateways/gw1/acks", 1); code != 1 {
		t.Fatalf("subscribe over TLS: granted %#x", code)
	}
	if _, err := dial(t, b.Addr(), clientOpts{user: "gw1", password: gw1Pass, id: "plain"}); err == nil {
		t.Fatal("plain MQTT accepted on the TLS listener")
	}
}

func TestDataDirInUse(t *testing.T) {
	gws, service := newFixture(t)
	opts := Options{Gateways: gws, ServiceUsers: service, DataDir: t.TempDir()}
	startBroker(t, opts)
	opts.Addr = "127.0.0.1:0"
	b2, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	err = b2.Start(t.Context())
	if err == nil {
		_ = b2.Close()
		t.Fatal("a second broker opened the same data dir")
	}
	if !strings.Contains(err.Error(), "locked") {
		t.Errorf("error %q does not say the store is locked", err)
	}
	if err := b2.Close(); err != nil {
		t.Errorf("Close after a failed Start: %v", err)
	}
}

func TestStartTwiceAndCloseIdempotent(t *testing.T) {
	gws, service := newFixture(t)
	b := startBroker(t, Options{Gateways: gws, ServiceUsers: service})
	if err := b.Start(t.Context()); err == nil {
		t.Error("second Start succeeded")
	}
	for range 2 {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}
	if _, err := dial(t, b.Addr(), clientOpts{user: "gw1", password: gw1Pass, id: "gw1"}); err == nil {
		t.Error("connected after Close")
	}
}
