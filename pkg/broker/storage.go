package broker

import (
	"strconv"
	"strings"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/storage"
	"github.com/mochi-mqtt/server/v2/hooks/storage/bolt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// boltStore wraps mochi's bolt storage hook and repairs what it gets wrong:
//
//   - It stores in-flight messages without their packet id (mochi's badger and pebble hooks
//     keep it). Restored, they all collide on id 0 in the client's in-flight map, so only one
//     survives, and resending it fails with "missing packet id" and drops the connection. The id
//     is the last part of the storage key, so StoredInflightMessages puts it back.
//   - It writes and deletes the broker's PUBACK for every inbound QoS 1 message, which lives
//     for microseconds, and rewrites every queued message when it is resent on reconnect;
//     those synced transactions are skipped, and deletes are issued only for in-flight messages
//     that were stored.
//   - It keeps an expired session's in-flight messages on disk forever; they are deleted too.
//   - It deletes a persistent session's stored messages when the client reconnects (mochi
//     reports them dropped from the old connection while moving them to the new one) and
//     stores each again only as it is resent, so a crash in between lost them.
//   - It stores subscription filters the ACL refused.
//   - It stores $SYS statistics every tick.
//   - mochi stops hooks while its housekeeping loop may still call them, and the bolt hook's
//     Stop sets its database handle to nil under no lock; here every call holds a read lock
//     and Stop the write lock, so a late call is a no-op instead of a data race.
type boltStore struct {
	*bolt.Hook
	mu      sync.RWMutex
	stopped bool

	inflightMu sync.Mutex
	inflight   map[string]map[uint16]struct{} // client id -> packet ids stored
}

var _ mqtt.Hook = (*boltStore)(nil)

func newBoltStore() *boltStore {
	return &boltStore{Hook: new(bolt.Hook), inflight: make(map[string]map[uint16]struct{})}
}

// Provides leaves out $SYS statistics: nobody may read $SYS here, and storing them was one
// synced transaction per tick (and an error logged on every start with a fresh store).
func (s *boltStore) Provides(b byte) bool {
	return b != mqtt.OnSysInfoTick && b != mqtt.StoredSysInfo && s.Hook.Provides(b)
}

func (s *boltStore) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return nil
	}
	s.stopped = true
	return s.Hook.Stop()
}

// do runs f unless the store has stopped.
func (s *boltStore) do(f func()) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.stopped {
		f()
	}
}

// track records that client's packet id is stored.
func (s *boltStore) track(client string, id uint16) {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	ids := s.inflight[client]
	if ids == nil {
		ids = make(map[uint16]struct{})
		s.inflight[client] = ids
	}
	ids[id] = struct{}{}
}

func (s *boltStore) tracked(client string, id uint16) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	_, ok := s.inflight[client][id]
	return ok
}

// untrack reports whether client's packet id was stored, and forgets it.
func (s *boltStore) untrack(client string, id uint16) bool {
	s.inflightMu.Lock()
	defer s.inflightMu.Unlock()
	ids := s.inflight[client]
	if _, ok := ids[id]; !ok {
		return false
	}
	delete(ids, id)
	if len(ids) == 0 {
		delete(s.inflight, client)
	}
	return true
}

func (s *boltStore) OnQosPublish(cl *mqtt.Client, pk packets.Packet, sent int64, resends int) {
	if pk.FixedHeader.Type == packets.Puback {
		return // the broker's PUBACK to an inbound QoS 1 message; deleted right after
	}
	if pk.FixedHeader.Type == packets.Publish && s.tracked(cl.ID, pk.PacketID) {
		return // a resend on reconnect: the stored copy differs only in the DUP flag
	}
	s.do(func() {
		s.Hook.OnQosPublish(cl, pk, sent, resends)
		s.track(cl.ID, pk.PacketID)
	})
}

func (s *boltStore) OnQosComplete(cl *mqtt.Client, pk packets.Packet) {
	if s.untrack(cl.ID, pk.PacketID) {
		s.do(func() { s.Hook.OnQosComplete(cl, pk) })
	}
}

func (s *boltStore) OnQosDropped(cl *mqtt.Client, pk packets.Packet) {
	if cl.IsTakenOver() {
		// mochi "drops" a taken-over session's messages after moving them to the new
		// connection of the same client id; the stored copies are the new connection's.
		return
	}
	if s.untrack(cl.ID, pk.PacketID) {
		s.do(func() { s.Hook.OnQosDropped(cl, pk) })
	}
}

func (s *boltStore) OnClientExpired(cl *mqtt.Client) {
	s.inflightMu.Lock()
	ids := s.inflight[cl.ID]
	delete(s.inflight, cl.ID)
	s.inflightMu.Unlock()
	s.do(func() {
		s.Hook.OnClientExpired(cl)
		for id := range ids {
			s.Hook.OnQosComplete(cl, packets.Packet{PacketID: id})
		}
	})
}

// StoredInflightMessages restores each message's packet id from its key, "IFM_<client>:<id>".
func (s *boltStore) StoredInflightMessages() (v []storage.Message, err error) {
	s.do(func() { v, err = s.Hook.StoredInflightMessages() })
	if err != nil {
		return nil, err
	}
	kept := v[:0]
	for _, m := range v {
		i := strings.LastIndexByte(m.ID, ':')
		id, perr := strconv.ParseUint(m.ID[i+1:], 10, 16)
		if i < 0 || perr != nil || id == 0 {
			s.Log.Warn("skipped stored in-flight message with unreadable key", "key", m.ID)
			continue
		}
		m.PacketID = uint16(id)
		s.track(m.Client, m.PacketID)
		kept = append(kept, m)
	}
	return kept, nil
}

func (s *boltStore) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnSessionEstablished(cl, pk) })
}

func (s *boltStore) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnWillSent(cl, pk) })
}

func (s *boltStore) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	s.do(func() { s.Hook.OnDisconnect(cl, err, expire) })
}

func (s *boltStore) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	// mochi reports refused filters too (reason code >= 0x80); storing them would resubscribe
	// the client to filters it was refused after a restart (deliveries are still ACL-checked,
	// but the subscription should not exist).
	kept := pk
	kept.Filters = nil
	var codes []byte
	for i, f := range pk.Filters {
		if i < len(reasonCodes) && reasonCodes[i] < packets.ErrUnspecifiedError.Code {
			kept.Filters = append(kept.Filters, f)
			codes = append(codes, reasonCodes[i])
		}
	}
	if len(kept.Filters) == 0 {
		return
	}
	s.do(func() { s.Hook.OnSubscribed(cl, kept, codes) })
}

func (s *boltStore) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	s.do(func() { s.Hook.OnUnsubscribed(cl, pk) })
}

func (s *boltStore) OnRetainMessage(cl *mqtt.Client, pk packets.Packet, r int64) {
	s.do(func() { s.Hook.OnRetainMessage(cl, pk, r) })
}

func (s *boltStore) OnRetainedExpired(filter string) {
	s.do(func() { s.Hook.OnRetainedExpired(filter) })
}

func (s *boltStore) StoredClients() (v []storage.Client, err error) {
	s.do(func() { v, err = s.Hook.StoredClients() })
	return v, err
}

func (s *boltStore) StoredSubscriptions() (v []storage.Subscription, err error) {
	s.do(func() { v, err = s.Hook.StoredSubscriptions() })
	return v, err
}

func (s *boltStore) StoredRetainedMessages() (v []storage.Message, err error) {
	s.do(func() { v, err = s.Hook.StoredRetainedMessages() })
	return v, err
}
