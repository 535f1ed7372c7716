package testutil

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PostgreSQL harness starts a cluster that answers, gives each caller
// a database of its own, and leaves nothing running or on disk when
// stopped.
func TestPostgresHarness(t *testing.T) {
	t.Parallel()
	pg, err := StartPostgres()
	if err != nil {
		Missing(t, "no PostgreSQL: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pg.NewDatabase(ctx)
	if err != nil || a == b {
		t.Fatalf("second database: %q %v", b, err)
	}
	c, err := pgx.Connect(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	var v string
	if err := c.QueryRow(ctx, "SHOW server_version").Scan(&v); err != nil || v[:3] != "15." {
		t.Fatalf("server_version %q %v", v, err)
	}
	c.Close(ctx)
	pg.Stop()
	select {
	case <-pg.exited:
	default:
		t.Fatal("postgres still running after Stop")
	}
	if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", pg.Port), time.Second); err == nil {
		conn.Close()
		t.Fatal("port still open after Stop")
	}
}
