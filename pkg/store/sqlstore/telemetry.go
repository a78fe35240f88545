package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/parkcarbon/parkcarbon/pkg/telemetry"
)

// RecordBatches stores dead letters and marks batch sequences as handled, in one transaction,
// so a collector acknowledges a batch only after both are durable.
func (s *Store) RecordBatches(ctx context.Context, dead []telemetry.DeadLetter, seqs []telemetry.SeqMark) error {
	if len(dead) == 0 && len(seqs) == 0 {
		return nil
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		for _, m := range seqs {
			if err := markSeq(ctx, tx, m); err != nil {
				return err
			}
		}
		if len(dead) == 0 {
			return nil
		}
		var last int64
		err := tx.QueryRowContext(ctx,
			`UPDATE sequences SET value = value + $1 WHERE name = 'dead_letters' RETURNING value`,
			int64(len(dead))).Scan(&last)
		if err != nil {
			return fmt.Errorf("take dead letter ids: %w", err)
		}
		id := last - int64(len(dead))
		for _, d := range dead {
			id++
			_, err := tx.ExecContext(ctx, `INSERT INTO dead_letters
				(id, park_id, gateway_id, topic, seq, meter, reason, payload, payload_bytes, received_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				id, d.Park, d.Gateway, telemetry.Truncate([]byte(d.Topic)), int64(d.Seq), d.Meter, d.Reason,
				telemetry.Truncate([]byte(d.Payload)), int64(d.PayloadBytes), d.ReceivedAt.UnixMilli())
			if err != nil {
				return fmt.Errorf("store dead letter: %w", err)
			}
		}
		return nil
	})
}

// markSeq records one handled batch sequence and advances the gateway's contiguous mark.
func markSeq(ctx context.Context, tx *sql.Tx, m telemetry.SeqMark) error {
	at := m.At.UnixMilli()
	seq := int64(m.Seq)
	var contiguous, maxSeen int64
	err := tx.QueryRowContext(ctx, `SELECT contiguous, max_seen FROM gateway_seqs WHERE gateway_id = $1`, m.Gateway).
		Scan(&contiguous, &maxSeen)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// First contact: the gateway's history starts here.
		_, err = tx.ExecContext(ctx, `INSERT INTO gateway_seqs (gateway_id, park_id, contiguous, max_seen, batches, updated_at)
			VALUES ($1, $2, $3, $3, 1, $4)`, m.Gateway, m.Park, seq, at)
		if err != nil {
			return fmt.Errorf("start sequence of gateway %s: %w", m.Gateway, err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read sequence of gateway %s: %w", m.Gateway, err)
	}
	if seq <= contiguous {
		_, err := tx.ExecContext(ctx, `UPDATE gateway_seqs SET batches = batches + 1, updated_at = $2 WHERE gateway_id = $1`, m.Gateway, at)
		return err // a redelivery
	}
	if seq > maxSeen {
		maxSeen = seq
	}
	if seq != contiguous+1 {
		if _, err := tx.ExecContext(ctx, `INSERT INTO gateway_seq_seen (gateway_id, seq) VALUES ($1, $2)
			ON CONFLICT (gateway_id, seq) DO NOTHING`, m.Gateway, seq); err != nil {
			return fmt.Errorf("note sequence %d of gateway %s: %w", seq, m.Gateway, err)
		}
		_, err := tx.ExecContext(ctx, `UPDATE gateway_seqs SET max_seen = $2, batches = batches + 1, updated_at = $3,
			gap_since = COALESCE(gap_since, $3) WHERE gateway_id = $1`, m.Gateway, maxSeen, at)
		return err
	}
	// seq closes the hole at contiguous+1: advance over the sequences seen above it.
	contiguous = seq
	for {
		res, err := tx.ExecContext(ctx, `DELETE FROM gateway_seq_seen WHERE gateway_id = $1 AND seq = $2`, m.Gateway, contiguous+1)
		if err != nil {
			return fmt.Errorf("advance sequence of gateway %s: %w", m.Gateway, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			break
		}
		contiguous++
	}
	query := `UPDATE gateway_seqs SET contiguous = $2, max_seen = $3, batches = batches + 1, updated_at = $4,
		gap_since = NULL WHERE gateway_id = $1`
	if contiguous < maxSeen { // a later hole is still open
		query = `UPDATE gateway_seqs SET contiguous = $2, max_seen = $3, batches = batches + 1, updated_at = $4,
		gap_since = COALESCE(gap_since, $4) WHERE gateway_id = $1`
	}
	_, err = tx.ExecContext(ctx, query, m.Gateway, contiguous, maxSeen, at)
	if err != nil {
		return fmt.Errorf("advance sequence of gateway %s: %w", m.Gateway, err)
	}
	return nil
}

// DeadLetterFilter selects dead letters of a park, newest first.
type DeadLetterFilter struct {
	Park string
	// Before, when > 0, returns only entries older than this id (the next page).
	Before int64
	// Since, when set, returns only entries received at or after it.
	Since time.Time
	Limit int
}

// ListDeadLetters returns a park's dead letters, newest first.
func (s *Store) ListDeadLetters(ctx context.Context, f DeadLetterFilter) ([]telemetry.DeadLetter, error) {
	before := f.Before
	if before <= 0 {
		before = 1 << 62
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, park_id, gateway_id, topic, seq, meter, reason, payload, payload_bytes, received_at
		FROM dead_letters WHERE park_id = $1 AND id < $2 AND received_at >= $3 ORDER BY id DESC LIMIT $4`,
		f.Park, before, f.Since.UnixMilli(), int64(pageSize(f.Limit)))
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []telemetry.DeadLetter
	for rows.Next() {
		var d telemetry.DeadLetter
		var seq, size, at int64
		if err := rows.Scan(&d.ID, &d.Park, &d.Gateway, &d.Topic, &seq, &d.Meter, &d.Reason, &d.Payload, &size, &at); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		d.Seq, d.PayloadBytes, d.ReceivedAt = uint64(seq), int(size), time.UnixMilli(at)
		out = append(out, d)
	}
	return out, rows.Err()
}

// GatewaySeqs returns the sequence state of a park's gateways.
func (s *Store) GatewaySeqs(ctx context.Context, park string) ([]telemetry.GatewaySeq, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT g.gateway_id, g.park_id, g.contiguous, g.max_seen, g.gap_since, g.batches, g.updated_at,
		(SELECT COUNT(*) FROM gateway_seq_seen x WHERE x.gateway_id = g.gateway_id)
		FROM gateway_seqs g WHERE g.park_id = $1 ORDER BY g.gateway_id`, park)
	if err != nil {
		return nil, fmt.Errorf("list gateway sequences: %w", err)
	}
	defer rows.Close()
	var out []telemetry.GatewaySeq
	for rows.Next() {
		var g telemetry.GatewaySeq
		var contiguous, maxSeen, updated, seen int64
		var gap sql.NullInt64
		if err := rows.Scan(&g.Gateway, &g.Park, &contiguous, &maxSeen, &gap, &g.Batches, &updated, &seen); err != nil {
			return nil, fmt.Errorf("list gateway sequences: %w", err)
		}
		g.Contiguous, g.MaxSeen, g.UpdatedAt = uint64(contiguous), uint64(maxSeen), time.UnixMilli(updated)
		g.Missing = uint64(maxSeen - contiguous - seen)
		if gap.Valid {
			g.GapSince = time.UnixMilli(gap.Int64)
		}
		out = append(out, g)
	}
	return out, rows.Err()
}
