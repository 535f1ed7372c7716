package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// Versioned schema migrations. The schema is the list in migrations.go,
// applied in order, each at most once: the table schema_migrations records
// which have run. Each migration runs in its own transaction together with
// the row that records it, so a migration is either applied and recorded or
// neither (SQLite's DDL is transactional). The store's DSN begins every
// transaction IMMEDIATE, so two processes opening one database take turns,
// and the second finds the version recorded and skips it.
//
// A migration, once released, is never edited: a change to the schema is a
// new migration at the end of the list.

// Migration is one step of the schema.
type Migration struct {
	Version int    // 1, 2, 3, ...: its place in the list
	Name    string // short, for errors and `sealpost migrate --status`
	Up      func(ctx context.Context, tx *sql.Tx) error
}

// SQL is a migration step that executes q (one or more statements).
func SQL(q string) func(ctx context.Context, tx *sql.Tx) error {
	return func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, q)
		return err
	}
}

// MigrationState is a migration and whether (when) it has been applied.
type MigrationState struct {
	Version   int
	Name      string
	AppliedAt time.Time // zero when pending
}

// MigrationError says which migration failed. The database is left as it
// was before that migration (its transaction is rolled back); the ones
// before it stay applied.
type MigrationError struct {
	Version int
	Name    string
	Err     error
}

func (e *MigrationError) Error() string {
	return fmt.Sprintf("migration %d (%s): %v", e.Version, e.Name, e.Err)
}

func (e *MigrationError) Unwrap() error { return e.Err }

// ErrSchemaTooNew is returned for a database that a newer sealpost has
// migrated past what this one knows: running on it could misread rows, so
// this version refuses it instead.
var ErrSchemaTooNew = errors.New("the database's schema is newer than this sealpost knows")

const versionTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	name       TEXT NOT NULL,
	applied_at INTEGER NOT NULL
)`

// checkMigrations rejects a list whose versions are not 1, 2, 3, ... in
// order: a gap or a duplicate is a merge mistake, caught at the first open.
func checkMigrations(list []Migration) error {
	for i, m := range list {
		if m.Version != i+1 || m.Name == "" || m.Up == nil {
			return fmt.Errorf("store: migration list broken at position %d (version %d, %q): versions must be 1, 2, 3, ... with a name and a step", i+1, m.Version, m.Name)
		}
	}
	return nil
}

// migrate applies the migrations of list that db has not had, in order,
// and returns those it applied.
func migrate(ctx context.Context, db *sql.DB, list []Migration, now func() time.Time) ([]MigrationState, error) {
	if err := checkMigrations(list); err != nil {
		return nil, err
	}
	// In a transaction of its own: the store's begin IMMEDIATE, so a second
	// process waits (busy_timeout) instead of failing on a lock upgrade.
	if err := createVersionTable(ctx, db); err != nil {
		return nil, fmt.Errorf("creating schema_migrations: %w", err)
	}
	var newest sql.NullInt64
	if err := db.QueryRowContext(ctx, `SELECT max(version) FROM schema_migrations`).Scan(&newest); err != nil {
		return nil, fmt.Errorf("reading schema_migrations: %w", err)
	}
	if int(newest.Int64) > len(list) {
		return nil, fmt.Errorf("%w: it is at version %d, this sealpost knows %d; run the newer sealpost or restore a backup", ErrSchemaTooNew, newest.Int64, len(list))
	}
	var applied []MigrationState
	for _, m := range list[newest.Int64:] {
		at, ok, err := applyOne(ctx, db, m, now)
		if err != nil {
			return applied, &MigrationError{Version: m.Version, Name: m.Name, Err: err}
		}
		if ok {
			applied = append(applied, MigrationState{Version: m.Version, Name: m.Name, AppliedAt: at})
		}
	}
	return applied, nil
}

func createVersionTable(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, versionTable); err != nil {
		return err
	}
	return tx.Commit()
}

// applyOne runs m in a transaction unless it is recorded (by another
// process since the caller looked); ok says it ran.
func applyOne(ctx context.Context, db *sql.DB, m Migration, now func() time.Time) (at time.Time, ok bool, err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return at, false, err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version=?`, m.Version).Scan(&n); err != nil {
		return at, false, err
	}
	if n > 0 {
		return at, false, nil
	}
	if err := m.Up(ctx, tx); err != nil {
		return at, false, err
	}
	at = now()
	if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?,?,?)`, m.Version, m.Name, at.UnixMilli()); err != nil {
		return at, false, err
	}
	return at, true, tx.Commit()
}

// migrationStatus is every migration of list with when db had it.
func migrationStatus(ctx context.Context, db *sql.DB, list []Migration) ([]MigrationState, error) {
	out := make([]MigrationState, len(list))
	for i, m := range list {
		out[i] = MigrationState{Version: m.Version, Name: m.Name}
	}
	var n int
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='schema_migrations'`).Scan(&n); err != nil {
		return nil, err
	}
	if n == 0 {
		return out, nil
	}
	rows, err := db.QueryContext(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var v int
		var name string
		var at int64
		if err := rows.Scan(&v, &name, &at); err != nil {
			return nil, err
		}
		if v < 1 || v > len(list) {
			// Applied by a newer sealpost: shown, so the operator sees why
			// this one refuses the database.
			out = append(out, MigrationState{Version: v, Name: name + " (unknown to this sealpost)", AppliedAt: fromMS(at)})
			continue
		}
		out[v-1].AppliedAt = fromMS(at)
	}
	return out, rows.Err()
}

// SQLiteMigrationStatus reports the migrations of the database at path
// without changing it (a missing file has every migration pending).
func SQLiteMigrationStatus(ctx context.Context, path string) ([]MigrationState, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		out := make([]MigrationState, len(sqliteMigrations))
		for i, m := range sqliteMigrations {
			out[i] = MigrationState{Version: m.Version, Name: m.Name}
		}
		return out, nil
	}
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	return migrationStatus(ctx, db, sqliteMigrations)
}

// Migrated is what opening the store applied (nil when the schema was up
// to date): the gateway logs it.
func (s *Store) Migrated() []MigrationState { return s.migrated }

type execQuerier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// addColumns adds each "table column declaration" unless the table has the
// column already (asked of SQLite, not guessed from an ALTER error, so that
// a real failure, such as a full disk or a locked file, stops the start
// instead of leaving a column missing). Only the baseline migration uses
// it, for databases made before versioned migrations: later migrations say
// ALTER TABLE plainly, since they run once.
func addColumns(ctx context.Context, db execQuerier, cols []string) error {
	have := map[string]map[string]bool{}
	for _, c := range cols {
		table, rest, _ := strings.Cut(c, " ")
		column, _, _ := strings.Cut(rest, " ")
		if have[table] == nil {
			names, err := tableColumns(ctx, db, table)
			if err != nil {
				return err
			}
			have[table] = names
		}
		if have[table][column] {
			continue
		}
		if _, err := db.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+rest); err != nil {
			return fmt.Errorf("adding column %s.%s: %w", table, column, err)
		}
		have[table][column] = true
	}
	return nil
}

func tableColumns(ctx context.Context, db execQuerier, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out[name] = true
	}
	return out, rows.Err()
}
