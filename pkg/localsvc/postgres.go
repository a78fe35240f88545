package localsvc

import (
	"context"
	"fmt"
	"net/url"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// Postgres is a PostgreSQL cluster run by deploy/local/postgres.sh: superuser postgres, trust
// authentication on 127.0.0.1, and fsync, synchronous_commit and full_page_writes off for speed
// (data survives a server crash, not a machine crash: tests and demos only).
type Postgres struct {
	DSN  string // postgres://postgres@127.0.0.1:port/postgres?sslmode=disable
	Dir  string
	Port int

	svc service
}

// StartPostgres starts PostgreSQL on 127.0.0.1:port with the cluster in dir/data, created on
// first use, and waits until it accepts connections. As root, the server runs as the user
// postgres, dir is given to that user and its parents under the temp dir are made traversable.
func StartPostgres(ctx context.Context, dir string, port int) (*Postgres, error) {
	p := &Postgres{Dir: dir, Port: port, svc: service{script: "postgres.sh", dir: dir}}
	if err := p.Start(ctx); err != nil {
		return nil, err
	}
	return p, nil
}

// Start starts the cluster again on the same directory and port, after Stop.
func (p *Postgres) Start(ctx context.Context) error {
	out, err := p.svc.start(ctx, nil, strconv.Itoa(p.Port))
	if err != nil {
		return err
	}
	p.DSN = out
	return nil
}

// Stop shuts the cluster down (fast mode: sessions are disconnected) and waits for it to exit.
func (p *Postgres) Stop() error { return p.svc.stop("stop") }

// Kill shuts the cluster down in immediate mode, like a crash: Start runs crash recovery.
func (p *Postgres) Kill() error { return p.svc.stop("kill") }

// maxIdentifierLen is PostgreSQL's limit; longer names are silently truncated.
const maxIdentifierLen = 63

// CreateDatabase creates the database name and returns its DSN.
func (p *Postgres) CreateDatabase(ctx context.Context, name string) (dsn string, err error) {
	if name == "" || len(name) > maxIdentifierLen {
		return "", fmt.Errorf("create database %q: the name must have 1 to %d bytes", name, maxIdentifierLen)
	}
	if err := p.exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(p.DSN)
	if err != nil {
		return "", fmt.Errorf("create database %s: %w", name, err)
	}
	u.Path = "/" + name
	return u.String(), nil
}

// DropDatabase drops the database name, disconnecting its sessions.
func (p *Postgres) DropDatabase(ctx context.Context, name string) error {
	if err := p.exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// exec runs one statement in the postgres database.
func (p *Postgres) exec(ctx context.Context, sql string) (err error) {
	conn, err := pgx.Connect(ctx, p.DSN)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := conn.Close(context.WithoutCancel(ctx)); err == nil {
			err = cerr
		}
	}()
	_, err = conn.Exec(ctx, sql)
	return err
}
