package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func TestMTASTSCache(t *testing.T) {
	t.Parallel()
	s, err := OpenSQLite(filepath.Join(t.TempDir(), "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	if p, err := s.MTASTSGet(ctx, "example.org"); p != nil || err != nil {
		t.Fatalf("%v %v", p, err)
	}
	p := MTASTSPolicy{Domain: "example.org", ID: "1", Policy: "version: STSv1\n", FetchedAt: now, Expires: now.Add(time.Hour), RefreshAt: now.Add(30 * time.Minute)}
	if err := s.MTASTSPut(ctx, p); err != nil {
		t.Fatal(err)
	}
	p.ID = "2"
	if err := s.MTASTSPut(ctx, p); err != nil {
		t.Fatal(err)
	}
	got, err := s.MTASTSGet(ctx, "example.org")
	if err != nil || *got != p {
		t.Fatalf("%+v %v", got, err)
	}
	if d, _ := s.MTASTSDue(ctx, now); len(d) != 0 {
		t.Fatalf("due early: %v", d)
	}
	if d, _ := s.MTASTSDue(ctx, now.Add(30*time.Minute)); len(d) != 1 {
		t.Fatalf("not due: %v", d)
	}
	if err := s.MTASTSDelete(ctx, "example.org"); err != nil {
		t.Fatal(err)
	}
	if p, _ := s.MTASTSGet(ctx, "example.org"); p != nil {
		t.Fatal("not deleted")
	}
}
