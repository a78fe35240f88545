package broker

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/parkcarbon/parkcarbon/pkg/auth"
	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// lookupTimeout bounds one registry lookup made while a client waits.
const lookupTimeout = 5 * time.Second

// dummyHash is verified against when the user is unknown, so that an unknown user name and a
// wrong password take the same time and user names cannot be probed.
const dummyHash = "$7$101$AAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

// accessHook is the mochi hook that authenticates gateways and service accounts at CONNECT,
// enforces the topic ACL, balances shared subscriptions over connected members, and logs and
// counts messages mochi drops.
type accessHook struct {
	mqtt.HookBase
	log      *slog.Logger
	gateways Gateways
	service  map[string]string // user name -> $7$ hash
	server   *mqtt.Server
	ctx      context.Context // cancelled by Broker.Close; parent of registry lookups

	mu    sync.RWMutex
	parks map[string]string // gateway id -> park id, learnt at CONNECT or looked up

	dropped atomic.Int64
}

var _ mqtt.Hook = (*accessHook)(nil)

func (h *accessHook) ID() string { return "parkcarbon-access" }

func (h *accessHook) Provides(b byte) bool {
	return bytes.IndexByte([]byte{
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSelectSubscribers,
		mqtt.OnPublishDropped,
		mqtt.OnQosDropped,
	}, b) >= 0
}

// OnConnectAuthenticate accepts a service account with its password, or a gateway whose id is
// the user name with the password it received at creation. Everyone else is refused with
// "bad user name or password"; when the registry cannot be asked, with "server unavailable".
func (h *accessHook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user := string(pk.Connect.Username)
	password := string(pk.Connect.Password)
	refuse := func(reason string, args ...any) bool {
		h.log.Warn("mqtt connect refused", append([]any{
			"reason", reason, "user", user, "client_id", cl.ID, "remote", cl.Net.Remote}, args...)...)
		if cl.Properties.ProtocolVersion < 5 {
			// mochi answers MQTT 3.1.1 with 0x05 "not authorized"; send 0x04 "bad user name or
			// password" (matching the 0x86 mochi sends to MQTT 5 clients) and close, so that
			// mochi's own CONNACK finds the connection closed.
			_ = h.server.SendConnack(cl, packets.ErrMalformedUsernameOrPassword, false, nil)
			cl.Stop(packets.ErrBadUsernameOrPassword)
		}
		return false
	}
	// unavailable refuses with "server unavailable" (0x03, MQTT 5: 0x88): the credentials could
	// not be checked, and a client should retry rather than report a wrong password.
	unavailable := func(reason string, args ...any) bool {
		h.log.Error("mqtt connect refused", append([]any{
			"reason", reason, "user", user, "client_id", cl.ID, "remote", cl.Net.Remote}, args...)...)
		_ = h.server.SendConnack(cl, packets.ErrServerUnavailable, false, nil)
		cl.Stop(packets.ErrServerUnavailable)
		return false
	}
	if !pk.Connect.UsernameFlag || user == "" {
		return refuse("anonymous")
	}

	if hash, ok := h.service[user]; ok {
		if !auth.VerifyPassword(password, hash) {
			return refuse("wrong password")
		}
	} else {
		ctx, cancel := context.WithTimeout(h.ctx, lookupTimeout)
		gw, err := h.gateways.GetGateway(ctx, user)
		cancel()
		switch {
		case errors.Is(err, registry.ErrNotFound):
			auth.VerifyPassword(password, dummyHash)
			return refuse("unknown user")
		case err != nil:
			return unavailable("registry lookup failed", "err", err)
		case gw.ID != user || gw.ParkID == "":
			return refuse("registry returned another gateway", "gateway", gw.ID, "park", gw.ParkID)
		case !auth.VerifyPassword(password, gw.PasswordHash):
			return refuse("wrong password")
		}
		h.mu.Lock()
		h.parks[user] = gw.ParkID
		h.mu.Unlock()
	}

	// A session belongs to the user who created it: taking over another user's client id would
	// hand that user's queued messages to this client without an ACL check.
	if existing, ok := h.server.Clients.Get(cl.ID); ok && string(existing.Properties.Username) != user {
		return refuse("client id belongs to another user", "owner", string(existing.Properties.Username))
	}
	return true
}

// OnACLCheck allows service accounts everything under parks/ and gateways their own topics;
// everything else is denied. write is true for a publish, false for a subscription filter
// and for each delivery to a subscriber.
func (h *accessHook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	user := string(cl.Properties.Username)
	allowed := false
	if _, ok := h.service[user]; ok {
		allowed = serviceMay(topic, write)
	} else if park, ok := h.parkOf(user); ok {
		t := TopicsFor(park, user)
		if write {
			allowed = t.mayPublish(topic)
		} else {
			allowed = topic == t.Subscribe
		}
	}
	if !allowed {
		access := "read"
		if write {
			access = "write"
		}
		h.log.Warn("mqtt access denied", "user", user, "client_id", cl.ID, "topic", topic, "access", access)
	}
	return allowed
}

// parkOf returns the park of gateway id: learnt at its CONNECT, or, for a session restored from
// disk whose gateway has not connected since, looked up in the registry.
func (h *accessHook) parkOf(id string) (string, bool) {
	if id == "" {
		return "", false
	}
	h.mu.RLock()
	park, ok := h.parks[id]
	h.mu.RUnlock()
	if ok {
		return park, true
	}
	ctx, cancel := context.WithTimeout(h.ctx, lookupTimeout)
	defer cancel()
	gw, err := h.gateways.GetGateway(ctx, id)
	if err != nil || gw.ID != id || gw.ParkID == "" {
		if err != nil && !errors.Is(err, registry.ErrNotFound) {
			h.log.Error("gateway lookup failed", "gateway", id, "err", err)
		}
		return "", false
	}
	h.mu.Lock()
	h.parks[id] = gw.ParkID
	h.mu.Unlock()
	return gw.ParkID, true
}

// OnSelectSubscribers picks the member of each shared-subscription group that receives a
// message. mochi picks an arbitrary member, connected or not, so a collector that went away
// with a persistent session would keep receiving (and queueing) its share until its session
// expires. This prefers a connected member whose in-flight queue has room, then an offline
// session with room (the message waits for its return), then a full member (mochi drops it
// and counts the drop). A group left with only subscriptions whose session is gone loses the
// message, as in mochi, but logged and counted.
func (h *accessHook) OnSelectSubscribers(subs *mqtt.Subscribers, pk packets.Packet) *mqtt.Subscribers {
	if len(subs.Shared) == 0 {
		return subs
	}
	maxInflight := int(h.server.Options.Capabilities.MaximumInflight)
	subs.SharedSelected = make(map[string]packets.Subscription, len(subs.Shared))
	for _, members := range subs.Shared {
		var bestID string
		var bestSub packets.Subscription
		best := -1
		for id, sub := range members { // map order is random: spreads load across members
			rank := 0 // no session: mochi would drop the message
			if cl, ok := h.server.Clients.Get(id); ok {
				switch {
				case cl.State.Inflight.Len() >= maxInflight:
					rank = 1 // full: mochi drops it (counted)
				case cl.Closed():
					rank = 2 // queued until the member returns
				default:
					rank = 3
				}
			}
			if rank > best {
				best, bestID, bestSub = rank, id, sub
				if rank == 3 {
					break
				}
			}
		}
		if best == 0 {
			h.dropped.Add(1)
			h.log.Warn("mqtt message dropped", "reason", "shared subscription without a session",
				"client_id", bestID, "filter", bestSub.Filter, "topic", pk.TopicName)
			continue
		}
		if cur, ok := subs.SharedSelected[bestID]; ok {
			bestSub = cur.Merge(bestSub)
		} else {
			bestSub = bestSub.Merge(bestSub)
		}
		subs.SharedSelected[bestID] = bestSub
	}
	return subs
}

// OnPublishDropped is called when a client's write queue is full and mochi drops a message.
func (h *accessHook) OnPublishDropped(cl *mqtt.Client, pk packets.Packet) {
	h.dropped.Add(1)
	h.log.Warn("mqtt message dropped", "reason", "client write queue full",
		"client_id", cl.ID, "user", string(cl.Properties.Username), "topic", pk.TopicName)
}

// OnQosDropped is called when a QoS 1/2 message leaves a client's in-flight store without
// being acknowledged: it expired, or the client's clean session ended.
func (h *accessHook) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.IsTakenOver() {
		return // moved to the client's new connection, not lost
	}
	h.dropped.Add(1)
	h.log.Warn("mqtt message dropped", "reason", "qos flow ended unacknowledged",
		"client_id", cl.ID, "user", string(cl.Properties.Username), "packet_id", pk.PacketID, "topic", pk.TopicName)
}
