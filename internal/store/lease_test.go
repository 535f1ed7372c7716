package store_test

import (
	"path/filepath"
	"testing"

	"sealpost/internal/store"
	"sealpost/internal/store/storetest"
)

func TestSQLiteLeases(t *testing.T) {
	t.Parallel()
	storetest.RunLeases(t, func(t *testing.T) store.Leases {
		s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestSQLitePortalAuth(t *testing.T) {
	t.Parallel()
	storetest.RunPortalAuth(t, func(t *testing.T) store.PortalAuth {
		s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "s.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}
