package main

import (
	"context"
	"path/filepath"
	"testing"

	"sealpost/internal/datadir"
	"sealpost/internal/store"
)

// `sealpost migrate` applies the migrations under the data directory's
// lock: while another process (a running gateway) holds it, it refuses;
// --status only reads, so it works either way.
func TestMigrateCommand(t *testing.T) {
	dir := t.TempDir()
	lock, err := datadir.Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if code := run([]string{"--dev", "--data", dir, "migrate"}); code == 0 {
		t.Fatal("migrate ran while the data directory was locked")
	}
	if code := run([]string{"--dev", "--data", dir, "migrate", "--status"}); code != 0 {
		t.Fatalf("migrate --status: exit %d", code)
	}
	states, err := store.SQLiteMigrationStatus(context.Background(), filepath.Join(dir, "sealpost.db"))
	if err != nil || !states[0].AppliedAt.IsZero() {
		t.Fatalf("migrated behind the lock: %+v %v", states, err)
	}
	lock.Release()
	if code := run([]string{"--dev", "--data", dir, "migrate"}); code != 0 {
		t.Fatalf("migrate: exit %d", code)
	}
	states, err = store.SQLiteMigrationStatus(context.Background(), filepath.Join(dir, "sealpost.db"))
	if err != nil || states[len(states)-1].AppliedAt.IsZero() {
		t.Fatalf("not migrated: %+v %v", states, err)
	}
}
