package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"reflect"
	"testing"
)

// A database made before users had totp and totp_step is brought up to
// date at open, and what the columns hold then works.
func TestOldDatabaseMigrated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`CREATE TABLE users (name TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL, disabled INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL);
		INSERT INTO users VALUES ('old', 'x', 'admin', 0, 0)`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	for _, step := range []struct {
		n    int64
		want bool
	}{{100, true}, {100, false}, {99, false}, {101, true}} {
		if ok, err := st.UseTOTPStep(ctx, "old", step.n); err != nil || ok != step.want {
			t.Fatalf("UseTOTPStep(%d) = %v, %v; want %v", step.n, ok, err, step.want)
		}
	}
	// Opening again finds the columns and adds nothing.
	st.Close()
	if st, err = OpenSQLite(path); err != nil {
		t.Fatal(err)
	}
}

func TestUserAddresses(t *testing.T) {
	st, err := OpenSQLite(filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if err := st.AddUser(ctx, &User{Name: "alice", PasswordHash: "x", Role: "sender", Addresses: []string{"Alice@Example.gov.uk", "housing@example.gov.uk"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.AddUserAddress(ctx, "nobody", "a@example.gov.uk"); err != ErrNotFound {
		t.Fatalf("address for an unknown user: %v", err)
	}
	if ok, err := st.AddUserAddress(ctx, "alice", "reception@example.gov.uk"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := st.RemoveUserAddress(ctx, "alice", "housing@example.gov.uk"); err != nil {
		t.Fatal(err)
	}
	got, _ := st.UserAddresses(ctx, "alice")
	if want := []string{"alice@example.gov.uk", "reception@example.gov.uk"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses %v, want %v", got, want)
	}
	users, _ := st.Users(ctx)
	if len(users) != 1 || !reflect.DeepEqual(users[0].Addresses, got) {
		t.Fatalf("Users: %+v", users)
	}
}
