package sqlstore

import (
	"context"
	"fmt"
	"time"
)

// CountDeadLetters counts the park's dead letters received at or after since.
func (s *Store) CountDeadLetters(ctx context.Context, park string, since time.Time) (int64, error) {
	var n int64
	err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM dead_letters WHERE park_id = $1 AND received_at >= $2`,
		park, since.UnixMilli()).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count dead letters of park %s: %w", park, err)
	}
	return n, nil
}
