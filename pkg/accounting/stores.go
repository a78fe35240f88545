package accounting

import (
	"context"
	"time"
)

// InputStore keeps what operators enter for the accounts (SQL): value added, process output,
// green instruments, meter replacement records and published factor-set versions. Months are
// "YYYY-MM" strings of the park's calendar. Every write records actor in the audit log and
// runs in one transaction.
type InputStore interface {
	// PutValueAdded creates or replaces the value added of (v.Enterprise, v.Month).
	PutValueAdded(ctx context.Context, park string, v ValueAdded, actor string) error
	// ListValueAdded returns value added for the months fromMonth..toMonth (both inclusive) of
	// one enterprise, or of every enterprise of the park when enterprise is empty.
	ListValueAdded(ctx context.Context, park, enterprise, fromMonth, toMonth string) ([]ValueAdded, error)
	// PutProcessOutput creates or replaces the output of (p.Enterprise, p.Month, p.Product).
	PutProcessOutput(ctx context.Context, park string, p ProcessOutput, actor string) error
	ListProcessOutputs(ctx context.Context, park, enterprise, fromMonth, toMonth string) ([]ProcessOutput, error)
	// CreateInstrument stores a green instrument. A duplicate id, or a certificate serial that
	// any stored certificate (of any park) already holds, is a registry.ErrConflict naming it.
	CreateInstrument(ctx context.Context, park string, in Instrument, actor string) error
	// ListInstruments returns the park's instruments whose period overlaps [from, to); zero
	// times leave that end open.
	ListInstruments(ctx context.Context, park string, from, to time.Time) ([]Instrument, error)
	// AddReplacement records that meter was replaced at r.At; one record per (meter, At).
	AddReplacement(ctx context.Context, park, meter string, r Replacement, actor string) error
	// ListReplacements returns a meter's replacement records, oldest first.
	ListReplacements(ctx context.Context, park, meter string) ([]Replacement, error)
	// SaveFactorSet stores a published factor-set version (the file text FormatSet writes);
	// an (id, version) that exists is a registry.ErrConflict: issued versions never change.
	SaveFactorSet(ctx context.Context, id string, version int, data []byte, actor string) error
	// ListFactorSets returns every published version's file text, by id then version.
	ListFactorSets(ctx context.Context) ([][]byte, error)
}

// DirtyHour says that readings of park stamped in the clock hour starting at Hour (UTC) were
// stored or changed, so the hourly rollups around it must be computed again.
type DirtyHour struct {
	Park string
	Hour time.Time
}

// DirtyStore is the shared list of dirty hours (SQL): collectors mark, the accounting role
// claims and clears. Marking is idempotent.
type DirtyStore interface {
	MarkDirty(ctx context.Context, hours []DirtyHour) error
	// ClaimDirty returns up to limit dirty hours with the mark version each was read at.
	ClaimDirty(ctx context.Context, limit int) ([]DirtyHour, []int64, error)
	// ClearDirty removes the marks, unless one was marked again after it was claimed (its
	// version moved on), so a mark made during a computation is never lost.
	ClearDirty(ctx context.Context, hours []DirtyHour, versions []int64) error
}
