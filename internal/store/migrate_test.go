package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// schemaOf is every table's columns (name, type, not null, default, key)
// and every index's SQL: what two databases must agree on to be the same
// schema.
func schemaOf(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	out := map[string]string{}
	rows, err := db.Query(`SELECT type, name, coalesce(sql,'') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'`)
	if err != nil {
		t.Fatal(err)
	}
	type obj struct{ typ, name, sql string }
	var objs []obj
	for rows.Next() {
		var o obj
		if err := rows.Scan(&o.typ, &o.name, &o.sql); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, o)
	}
	rows.Close()
	for _, o := range objs {
		if o.typ == "index" {
			out["index "+o.name] = o.sql
			continue
		}
		cols, err := db.Query(`SELECT name, type, "notnull", coalesce(dflt_value,''), pk FROM pragma_table_info(?) ORDER BY name`, o.name)
		if err != nil {
			t.Fatal(err)
		}
		var b strings.Builder
		for cols.Next() {
			var name, typ, dflt string
			var nn, pk int
			if err := cols.Scan(&name, &typ, &nn, &dflt, &pk); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %s nn=%d default=%s pk=%d; ", name, typ, nn, dflt, pk)
		}
		cols.Close()
		out[o.typ+" "+o.name] = b.String()
	}
	return out
}

// A database with today's schema and rows (written by main's own code
// before versioned migrations, testdata/store) is adopted by the baseline:
// every row reads back through the store, the schema is the same as a
// fresh database's, and opening it again applies nothing.
func TestUpgradeFromMainSchema(t *testing.T) {
	t.Parallel()
	dump, err := os.ReadFile("../../testdata/store/schema-main-2026-12-01.sql")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "old.db")
	old := rawDB(t, path)
	if _, err := old.Exec(string(dump)); err != nil {
		t.Fatal(err)
	}
	old.Close()

	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if got := st.Migrated(); len(got) != len(sqliteMigrations) || got[0].Name != "baseline" {
		t.Fatalf("migrated at open: %+v", got)
	}
	ctx := context.Background()
	m, err := st.Message(ctx, "m-queued")
	if err != nil {
		t.Fatal(err)
	}
	if m.MailFrom != "alice@example.gov.uk" || m.Subject != "Case 17" || m.Spool.Seg != 3 || m.Spool.Off != 4096 || !bytes.Equal(m.Spool.Key, []byte{1, 2, 3, 4}) || m.State != "queued" {
		t.Fatalf("queued message after upgrade: %+v", m)
	}
	rs, err := st.Recipients(ctx, "m-queued")
	if err != nil || len(rs) != 2 {
		t.Fatalf("recipients %+v %v", rs, err)
	}
	for _, r := range rs {
		if r.Rcpt == "carol@example.org" && (r.Status != "held" || r.Then != "seal") {
			t.Fatalf("held recipient after upgrade: %+v", r)
		}
	}
	if d, err := st.Message(ctx, "m-done"); err != nil || d.State != "done" {
		t.Fatalf("done message: %+v %v", d, err)
	}
	// The queued one is still due: an upgrade must not strand the queue.
	due, err := st.LeaseDue(ctx, time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), time.Minute, 10)
	if err != nil || len(due) != 1 || due[0].Rcpt != "bob@example.org" {
		t.Fatalf("due after upgrade: %+v %v", due, err)
	}
	s, err := st.GetSealed(ctx, "s-1")
	if err != nil || string(s.WrappedKey) != "wrapped-key-bytes" || s.MessageID != "m1@example.gov.uk" {
		t.Fatalf("sealed after upgrade: %+v %v", s, err)
	}
	if r, err := st.SealedRecipientByToken(ctx, []byte("token-hash-0001")); err != nil || r.Name != "Erin" || r.Reference != "REF-1" {
		t.Fatalf("sealed recipient after upgrade: %+v %v", r, err)
	}
	if u, err := st.GetUser(ctx, "alice"); err != nil || u.Role != "sender" {
		t.Fatalf("user after upgrade: %+v %v", u, err)
	}
	if tok, err := st.APITokenByHash(ctx, []byte("0123456789abcdef0123456789abcdef")); err != nil || tok.Name != "ci" {
		t.Fatalf("token after upgrade: %+v %v", tok, err)
	}
	if dec, err := st.GetDecision(ctx, "m-queued"); err != nil || dec.State != "held" {
		t.Fatalf("decision after upgrade: %+v %v", dec, err)
	}
	if e, err := st.LastAuditEvent(ctx); err != nil || e.Seq != 1 || !bytes.Equal(e.MAC, []byte{0x0a, 0x0b}) {
		t.Fatalf("audit event after upgrade: %+v %v", e, err)
	}
	// Same schema as a database made from nothing.
	fresh, err := OpenSQLite(filepath.Join(dir, "fresh.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if a, b := schemaOf(t, st.DB), schemaOf(t, fresh.DB); !reflect.DeepEqual(a, b) {
		for k := range b {
			if a[k] != b[k] {
				t.Errorf("%s:\n upgraded %s\n fresh    %s", k, a[k], b[k])
			}
		}
		t.Fatal("upgraded schema differs from a fresh one")
	}
	st.Close()
	again, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if len(again.Migrated()) != 0 {
		t.Fatalf("second open applied %+v", again.Migrated())
	}
	states, err := SQLiteMigrationStatus(ctx, path)
	if err != nil || len(states) != len(sqliteMigrations) || states[0].AppliedAt.IsZero() {
		t.Fatalf("status %+v %v", states, err)
	}
}

func testList(steps ...string) []Migration {
	var l []Migration
	for i, q := range steps {
		l = append(l, Migration{Version: i + 1, Name: fmt.Sprintf("step%d", i+1), Up: SQL(q)})
	}
	return l
}

func count(t *testing.T, db *sql.DB, q string) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Each migration runs once: the second ALTER TABLE ... ADD COLUMN would
// fail if it ran again; a later run applies only the new one.
func TestMigrationsRunOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rawDB(t, filepath.Join(t.TempDir(), "m.db"))
	list := testList(`CREATE TABLE t (a INTEGER)`, `ALTER TABLE t ADD COLUMN b TEXT`)
	if got, err := migrate(ctx, db, list, time.Now); err != nil || len(got) != 2 {
		t.Fatalf("first run: %+v %v", got, err)
	}
	if got, err := migrate(ctx, db, list, time.Now); err != nil || len(got) != 0 {
		t.Fatalf("second run: %+v %v", got, err)
	}
	list = append(list, testList("", "", `ALTER TABLE t ADD COLUMN c TEXT`)[2])
	got, err := migrate(ctx, db, list, time.Now)
	if err != nil || len(got) != 1 || got[0].Version != 3 {
		t.Fatalf("third run: %+v %v", got, err)
	}
	if n := count(t, db, `SELECT count(*) FROM schema_migrations`); n != 3 {
		t.Fatalf("%d recorded", n)
	}
}

// Even when a process's view of the versions is stale (it read them
// before another applied one), it does not apply a recorded migration
// again: the check inside the migration's transaction decides.
func TestMigrationRecordedMeanwhileSkipped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rawDB(t, filepath.Join(t.TempDir(), "m.db"))
	list := testList(`CREATE TABLE t (a INTEGER)`, `ALTER TABLE t ADD COLUMN b TEXT`)
	if _, err := migrate(ctx, db, list, time.Now); err != nil {
		t.Fatal(err)
	}
	for _, m := range list {
		if _, ok, err := applyOne(ctx, db, m, time.Now); ok || err != nil {
			t.Fatalf("migration %d applied again: %v %v", m.Version, ok, err)
		}
	}
}

// Two processes opening one new database at once: both open it, the
// migrations are applied once between them.
func TestConcurrentOpensMigrateOnce(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "c.db")
	var wg sync.WaitGroup
	var mu sync.Mutex
	applied := 0
	errs := make(chan error, 3)
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := OpenSQLite(path)
			if err != nil {
				errs <- err
				return
			}
			mu.Lock()
			applied += len(st.Migrated())
			mu.Unlock()
			st.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if applied != len(sqliteMigrations) {
		t.Fatalf("%d migrations applied by three openers, want %d", applied, len(sqliteMigrations))
	}
}

// A failing migration is named, leaves nothing of itself behind (its
// transaction is rolled back), and stops the ones after it; once fixed,
// the next run applies it and the rest.
func TestMigrationFailureNamedAndRolledBack(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := rawDB(t, filepath.Join(t.TempDir(), "m.db"))
	list := testList(`CREATE TABLE t (a INTEGER)`, `CREATE TABLE half (x INTEGER); INSERT INTO missing VALUES (1)`, `CREATE TABLE after (y INTEGER)`)
	_, err := migrate(ctx, db, list, time.Now)
	var me *MigrationError
	if !errors.As(err, &me) || me.Version != 2 || !strings.Contains(err.Error(), "migration 2 (step2)") || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("error %v", err)
	}
	if n := count(t, db, `SELECT count(*) FROM sqlite_master WHERE name IN ('half','after')`); n != 0 {
		t.Fatalf("%d tables of the failed and later migrations exist", n)
	}
	if n := count(t, db, `SELECT max(version) FROM schema_migrations`); n != 1 {
		t.Fatalf("recorded up to %d", n)
	}
	list[1].Up = SQL(`CREATE TABLE half (x INTEGER)`)
	if got, err := migrate(ctx, db, list, time.Now); err != nil || len(got) != 2 {
		t.Fatalf("after the fix: %+v %v", got, err)
	}
}

// The baseline does not ignore errors as the old ALTER TABLE calls did:
// a table it cannot complete fails the open, naming the migration.
func TestBaselineErrorStopsOpen(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v.db")
	db := rawDB(t, path)
	// An old database whose users is something that cannot take a column.
	if _, err := db.Exec(`CREATE TABLE real_users (name TEXT); CREATE VIEW users AS SELECT name FROM real_users`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := OpenSQLite(path)
	if err == nil {
		st.Close()
		t.Fatal("opened a database whose users table cannot be completed")
	}
	if !strings.Contains(err.Error(), "migration 1 (baseline)") {
		t.Fatalf("error does not name the migration: %v", err)
	}
}

// A database a newer sealpost migrated further is refused, not misread.
func TestSchemaTooNewRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "n.db")
	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.DB.Exec(`INSERT INTO schema_migrations VALUES (?, 'from the future', 0)`, len(sqliteMigrations)+1); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if st, err = OpenSQLite(path); !errors.Is(err, ErrSchemaTooNew) {
		if err == nil {
			st.Close()
		}
		t.Fatalf("open: %v", err)
	}
	states, err := SQLiteMigrationStatus(context.Background(), path)
	if err != nil || len(states) != len(sqliteMigrations)+1 {
		t.Fatalf("status %+v %v", states, err)
	}
}

func TestMigrationListWellFormed(t *testing.T) {
	t.Parallel()
	if err := checkMigrations(sqliteMigrations); err != nil {
		t.Fatal(err)
	}
	bad := testList("SELECT 1", "SELECT 2")
	bad[1].Version = 3
	if err := checkMigrations(bad); err == nil {
		t.Fatal("a gap in the versions passed")
	}
}
