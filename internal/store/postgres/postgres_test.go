package postgres

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"sealpost/internal/store"
	"sealpost/internal/store/storetest"
	"sealpost/internal/testutil"
)

// One PostgreSQL cluster for the package, started by TestMain; each test
// gets a database of its own.
var (
	pg    *testutil.Postgres
	pgErr error
)

func TestMain(m *testing.M) {
	pg, pgErr = testutil.StartPostgres()
	code := m.Run()
	pg.Stop()
	os.Exit(code)
}

func newDB(t *testing.T) string {
	t.Helper()
	if pgErr != nil {
		testutil.Missing(t, "no PostgreSQL: %v", pgErr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url, err := pg.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func open(t *testing.T, url string) *Store {
	t.Helper()
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestPostgresLeases(t *testing.T) {
	t.Parallel()
	storetest.RunLeases(t, func(t *testing.T) store.Leases { return open(t, newDB(t)) })
}

// Three nodes starting at once on a new database: the advisory lock lets
// one migrate; the others find it done. Opening again applies nothing.
func TestPostgresMigrationsOnceAcrossNodes(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Open(context.Background(), url)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			applied += len(s.Migrated())
			mu.Unlock()
			s.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if applied != len(migrations) {
		t.Fatalf("%d migrations applied by three nodes, want %d", applied, len(migrations))
	}
	s := open(t, url)
	if len(s.Migrated()) != 0 {
		t.Fatalf("reopen applied %+v", s.Migrated())
	}
	states, err := s.MigrationStatus(context.Background())
	if err != nil || len(states) != len(migrations) || states[0].AppliedAt.IsZero() {
		t.Fatalf("status %+v %v", states, err)
	}
}

// A failing migration is named and rolled back, the ones after it do not
// run, and a database migrated past this version is refused.
func TestPostgresMigrationFailureAndTooNew(t *testing.T) {
	t.Parallel()
	url := newDB(t)
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	list := []migration{{1, "one", `CREATE TABLE a (x INT)`}, {2, "two", `CREATE TABLE half (x INT); INSERT INTO missing VALUES (1)`}, {3, "three", `CREATE TABLE after (x INT)`}}
	_, err = migrate(ctx, pool, list, time.Now)
	var me *store.MigrationError
	if !errors.As(err, &me) || me.Version != 2 || !strings.Contains(err.Error(), "migration 2 (two)") {
		t.Fatalf("error %v", err)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_tables WHERE tablename IN ('half','after')`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d tables of the failed and later migrations, %v", n, err)
	}
	list[1].sql = `CREATE TABLE half (x INT)`
	if got, err := migrate(ctx, pool, list, time.Now); err != nil || len(got) != 2 {
		t.Fatalf("after the fix: %+v %v", got, err)
	}
	if _, err := migrate(ctx, pool, list[:2], time.Now); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("older list on a newer database: %v", err)
	}
}

func TestPostgresPortalAuth(t *testing.T) {
	t.Parallel()
	storetest.RunPortalAuth(t, func(t *testing.T) store.PortalAuth { return open(t, newDB(t)) })
}
