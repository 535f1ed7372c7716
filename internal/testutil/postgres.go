package testutil

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBin is where Debian's postgresql-15 puts its programs
// (scripts/install-test-deps.sh installs it, with its service kept
// stopped: the tests run their own clusters).
const PostgresBin = "/usr/lib/postgresql/15/bin"

// Postgres is a PostgreSQL cluster of its own in a temporary directory,
// listening on a free loopback port and a unix socket in that directory,
// run as the "postgres" user when the tests run as root (PostgreSQL
// refuses to run as root). Trust authentication, loopback only.
type Postgres struct {
	*Proc
	Port   int
	Socket string // the directory of the unix socket
	User   string
	dir    string
	dbs    atomic.Int64
}

// StartPostgres initdb's and starts a cluster. Durability is off (fsync,
// synchronous_commit): the tests check what the store commits, not the
// disk; a power-cut test must not use it.
func StartPostgres() (*Postgres, error) {
	for _, p := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(PostgresBin, p)); err != nil {
			return nil, fmt.Errorf("PostgreSQL 15 not installed (%s/%s missing; scripts/install-test-deps.sh installs it)", PostgresBin, p)
		}
	}
	var cred *syscall.Credential
	var uid, gid = -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, and no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "sealpost-pg-")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Postgres, error) {
		os.RemoveAll(dir)
		return nil, err
	}
	if uid >= 0 {
		if err := os.Chown(dir, uid, gid); err != nil {
			return fail(err)
		}
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(PostgresBin, "initdb"), "-D", data, "-U", "sealpost", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		return fail(fmt.Errorf("initdb: %v: %s", err, out))
	}
	var last error
	for range 3 { // the free port can be taken between the check and the start
		port, err := freePort()
		if err != nil {
			return fail(err)
		}
		pg := &Postgres{Port: port, Socket: dir, User: "sealpost", dir: dir}
		cmd := exec.Command(filepath.Join(PostgresBin, "postgres"), "-D", data, "-p", strconv.Itoa(port), "-k", dir,
			"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
			"-c", "max_connections=200", "-c", "shared_buffers=32MB", "-c", "logging_collector=off")
		cmd.Dir = dir
		if pg.Proc, err = startProc(cmd, cred); err != nil {
			return fail(err)
		}
		pg.Proc.stop = syscall.SIGINT // "fast" shutdown: does not wait for clients
		if last = pg.waitReady(30 * time.Second); last == nil {
			return pg, nil
		}
		pg.Proc.Stop()
		last = fmt.Errorf("postgres: %v: %s", last, pg.Output())
	}
	return fail(last)
}

// waitReady waits until the server takes a connection and answers.
func (pg *Postgres) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, pg.URL("postgres"))
		if err == nil {
			err = c.Ping(ctx)
			c.Close(ctx)
		}
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-pg.exited:
			return fmt.Errorf("exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is the connection URL of database db over TCP.
func (pg *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", pg.User, pg.Port, db)
}

// NewDatabase creates an empty database of its own (one per test, so
// tests can run in parallel on one cluster) and returns its URL.
func (pg *Postgres) NewDatabase(ctx context.Context) (string, error) {
	name := fmt.Sprintf("t%d", pg.dbs.Add(1))
	c, err := pgx.Connect(ctx, pg.URL("postgres"))
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", err
	}
	return pg.URL(name), nil
}

// Stop ends the server and removes its directory.
func (pg *Postgres) Stop() {
	if pg == nil {
		return
	}
	pg.Proc.Stop()
	os.RemoveAll(pg.dir)
}
