// Package sqlstore is the SQL store of the registry, tokens and audit log, on SQLite or
// PostgreSQL.
//
// Both databases run the same migrations and the same SQL text: placeholders are $1, $2 …
// (modernc.org/sqlite binds $N by position like PostgreSQL), and the few dialect-specific
// fragments (row locks, bytewise collation) are substituted per store. On SQLite every
// transaction is BEGIN IMMEDIATE, so writers queue on the busy timeout instead of failing
// with SQLITE_BUSY; on PostgreSQL writes lock the park row (FOR SHARE, FOR UPDATE to change or
// delete the park) before the rows under it, and the row they update.
package sqlstore

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/parkcarbon/parkcarbon/pkg/registry"
)

// Dialects returned by Store.Dialect.
const (
	DialectSQLite   = "sqlite"
	DialectPostgres = "postgres"
)

// sqliteParams are added to every SQLite DSN: WAL so readers never wait for the writer, a busy
// timeout so concurrent writers wait for each other, foreign keys enforced, and BEGIN
// IMMEDIATE so a transaction takes the write lock when it starts (a deferred transaction that
// reads first and writes later can fail with SQLITE_BUSY without waiting).
const sqliteParams = "_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_txlock=immediate"

//go:embed migrations/*.sql
var migrations embed.FS

// Store keeps the registry, tokens and audit log in SQLite or PostgreSQL. It is safe for
// concurrent use.
type Store struct {
	db      *sql.DB
	dialect string
	logger  *slog.Logger
	// frag substitutes the dialect-specific fragments of the portable SQL text, see q.
	frag *strings.Replacer
	// now stamps audit rows and tokens created without a time.
	now func() time.Time
	// writer, on SQLite, admits one transaction of this process at a time: SQLite has one
	// writer anyway, and queueing here is an order of magnitude faster than SQLite's busy
	// handler, which polls with sleeps. The busy timeout still covers other processes (and
	// users of DB) writing the same file.
	writer chan struct{}
}

var _ registry.Store = (*Store)(nil)

// Open connects to the database named by dsn: a postgres:// or postgresql:// URL selects
// PostgreSQL, anything else is the path of a SQLite file (created with its directory if
// missing; a file: URI is passed through with the store's parameters added). Open does not
// migrate: call Migrate.
func Open(ctx context.Context, dsn string, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if strings.TrimSpace(dsn) == "" {
		return nil, errors.New("open sql store: empty database address: give a SQLite file path or a postgres:// URL")
	}
	s := &Store{logger: logger, now: time.Now}
	var driver, source, shown string
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		s.dialect, driver, source = DialectPostgres, "pgx", dsn
		shown = redact(dsn)
		s.frag = strings.NewReplacer(
			"{for_update}", " FOR UPDATE",
			"{for_share}", " FOR SHARE",
			"{collate}", ` COLLATE "C"`,
		)
	} else {
		s.dialect, driver, shown = DialectSQLite, "sqlite", dsn
		if !strings.HasPrefix(dsn, "file:") && dsn != ":memory:" {
			path, _, _ := strings.Cut(dsn, "?")
			if dir := filepath.Dir(path); dir != "." {
				if err := os.MkdirAll(dir, 0o750); err != nil {
					return nil, fmt.Errorf("open sql store: create directory of %s: %w", path, err)
				}
			}
		}
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		source = dsn + sep + sqliteParams
		// SQLite's BINARY collation already sorts bytewise, and a BEGIN IMMEDIATE transaction
		// holds the database's write lock, which is stronger than any row lock.
		s.frag = strings.NewReplacer("{for_update}", "", "{for_share}", "", "{collate}", "")
		s.writer = make(chan struct{}, 1)
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		return nil, fmt.Errorf("open sql store %s: %w", shown, err)
	}
	if err := db.PingContext(ctx); err != nil {
		return nil, errors.Join(fmt.Errorf("open sql store %s: %w", shown, err), db.Close())
	}
	s.db = db
	logger.InfoContext(ctx, "sql store opened", "dialect", s.dialect, "database", shown)
	return s, nil
}

// redact hides the password of a database URL for logs and errors.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable database url)"
	}
	return u.Redacted()
}

// Migrate applies the embedded migrations that the database does not have yet. Applying them
// again is a no-op. On PostgreSQL an advisory lock keeps concurrent starts from racing.
func (s *Store) Migrate(ctx context.Context) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	dialect := goose.DialectSQLite3
	var opts []goose.ProviderOption
	if s.dialect == DialectPostgres {
		dialect = goose.DialectPostgres
		locker, err := lock.NewPostgresSessionLocker()
		if err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		opts = append(opts, goose.WithSessionLocker(locker))
	}
	// The provider is not closed: Provider.Close would close s.db.
	p, err := goose.NewProvider(dialect, s.db, fsys, opts...)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	results, err := p.Up(ctx)
	for _, r := range results {
		if r.Error == nil {
			s.logger.InfoContext(ctx, "migration applied", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
		}
	}
	if err != nil {
		return fmt.Errorf("migrate %s database: %w", s.dialect, err)
	}
	return nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Dialect is "sqlite" or "postgres".
func (s *Store) Dialect() string { return s.dialect }

// DB is the underlying database, for packages that keep their own tables (added as
// migrations of this package).
func (s *Store) DB() *sql.DB { return s.db }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping %s database: %w", s.dialect, err)
	}
	return nil
}

// q returns the portable SQL text query with its dialect fragments filled in:
// {for_update} and {for_share} lock the selected rows on PostgreSQL (nothing on SQLite, whose
// immediate transactions already hold the write lock), {collate} makes PostgreSQL compare ids
// bytewise, as SQLite does, whatever the database's locale.
func (s *Store) q(query string) string { return s.frag.Replace(query) }

// inTx runs fn in a transaction, committing when it returns nil and rolling back otherwise.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	if s.writer != nil {
		select {
		case s.writer <- struct{}{}:
			defer func() { <-s.writer }()
		case <-ctx.Done():
			return fmt.Errorf("wait for the database writer: %w", ctx.Err())
		}
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		if rbErr := tx.Rollback(); rbErr != nil && !errors.Is(rbErr, sql.ErrTxDone) {
			s.logger.WarnContext(ctx, "rollback failed", "err", rbErr)
		}
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// isUniqueViolation reports a duplicate primary key or unique column on either driver.
func isUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY || se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23505" // unique_violation
	}
	return false
}

// isForeignKeyViolation reports a reference to a missing row, or the removal of a referenced
// row, on either driver.
func isForeignKeyViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Code == "23503" // foreign_key_violation
	}
	return false
}

// insertErr maps the error of an INSERT of what: a duplicate key becomes ErrAlreadyExists, a
// broken reference (the explicit checks ran first, so only a concurrent change) ErrConflict.
func insertErr(what string, err error) error {
	switch {
	case isUniqueViolation(err):
		return fmt.Errorf("%s: %w", what, registry.ErrAlreadyExists)
	case isForeignKeyViolation(err):
		return fmt.Errorf("%s: a referenced row changed concurrently, retry: %w", what, registry.ErrConflict)
	}
	return fmt.Errorf("insert %s: %w", what, err)
}

// nullIfEmpty maps the empty string of an optional reference to SQL NULL.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// pageSize bounds a list page like registry.Service does, for callers of the store itself.
func pageSize(n int) int {
	if n <= 0 || n > registry.MaxPageSize {
		return registry.MaxPageSize
	}
	return n
}
