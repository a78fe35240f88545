package telemetry

import "time"

// MaxDeadLetterPayload bounds the payload kept with a dead letter.
const MaxDeadLetterPayload = 64 << 10

// DeadLetter is a message or reading the collector could not store, with the reason.
type DeadLetter struct {
	ID      int64
	Park    string
	Gateway string
	Topic   string
	Seq     uint64
	// Meter is set when one reading was refused; empty for a whole message.
	Meter  string
	Reason string
	// Payload is the message or reading as received, cut to MaxDeadLetterPayload bytes.
	Payload      string
	PayloadBytes int
	ReceivedAt   time.Time
}

// Truncate returns p cut to MaxDeadLetterPayload bytes as text (invalid UTF-8 is replaced, so
// any database stores it).
func Truncate(p []byte) string {
	if len(p) > MaxDeadLetterPayload {
		p = p[:MaxDeadLetterPayload]
	}
	return toValidUTF8(p)
}

// SeqMark records that a gateway's batch seq was durably handled.
type SeqMark struct {
	Park    string
	Gateway string
	Seq     uint64
	At      time.Time
}

// GatewaySeq is the sequence state of one gateway: every batch up to Contiguous arrived; a gap
// is open (GapSince set) while a later batch arrived before an earlier one.
type GatewaySeq struct {
	Park       string
	Gateway    string
	Contiguous uint64
	MaxSeen    uint64
	// Missing counts the sequences between Contiguous and MaxSeen that have not arrived.
	Missing   uint64
	GapSince  time.Time
	Batches   int64
	UpdatedAt time.Time
}
