package store

import (
	"path/filepath"
	"testing"
)

// TestDurabilityPragmas: the store's durability is SQLite's, and only with
// these settings: WAL with synchronous=FULL makes every committed
// transaction survive a power cut (NORMAL in WAL mode survives a crash of
// the process only; OFF not even that), and secure_delete overwrites the
// freed bytes, such as a finished message's cleared spool key. The
// power-cut tests cannot see the database's fsyncs, so this pins them.
func TestDurabilityPragmas(t *testing.T) {
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Every connection of the pool gets the DSN's pragmas; check several.
	for i := 0; i < 4; i++ {
		var sync, secure int
		var mode string
		if err := s.DB.QueryRow("PRAGMA synchronous").Scan(&sync); err != nil {
			t.Fatal(err)
		}
		s.DB.QueryRow("PRAGMA journal_mode").Scan(&mode)
		s.DB.QueryRow("PRAGMA secure_delete").Scan(&secure)
		if sync != 2 || mode != "wal" || secure != 1 {
			t.Fatalf("synchronous=%d (want 2, FULL), journal_mode=%s (want wal), secure_delete=%d (want 1)", sync, mode, secure)
		}
	}
}
