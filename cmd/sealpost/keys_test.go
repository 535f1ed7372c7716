package main

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// capture runs the command line and returns its exit status and stdout.
// Not parallel: it swaps os.Stdout.
func capture(t *testing.T, args ...string) (int, string) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	code := run(args)
	w.Close()
	os.Stdout = old
	return code, <-done
}

// TestKeysCommands: add (RFC 9216's Alice and Bob, a secret key refused),
// list --json, lookup --json with the ladder, remove, and the exit codes.
func TestKeysCommands(t *testing.T) {
	dir := t.TempDir()
	if code, out := capture(t, "init", "--data", dir, "--domain", "council.example"); code != 0 {
		t.Fatalf("init: %d %s", code, out)
	}
	conf := filepath.Join(dir, "sealpost.toml")
	b, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte(strings.Replace(string(b), "\nwkd = true", "\nwkd = false", 1)), 0o600)
	certs := "../../testdata/openpgp/certificates/"
	if code, out := capture(t, "keys", "add", "--config", conf, certs+"alice.pgp", certs+"bob.pgp"); code != 0 || !strings.Contains(out, "EB85BB5FA33A75E15E944E63F231550C4F47E38E for alice@openpgp.example") {
		t.Fatalf("add: %d %s", code, out)
	}
	if code, _ := capture(t, "keys", "add", "--config", conf, certs+"alice-secret.pgp"); code != 1 {
		t.Fatalf("a secret key: exit %d", code)
	}
	if code, _ := capture(t, "keys", "add", "--staff", "--config", conf, certs+"bob.pgp"); code != 2 {
		t.Fatalf("--staff for another domain: exit %d", code)
	}
	code, out := capture(t, "keys", "list", "--json", "--config", conf)
	var list struct {
		Keys []struct{ Fingerprint, Source, Kind, Algorithm string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list.Keys) != 2 || list.Keys[0].Algorithm != "RSA-3072" || list.Keys[1].Source != "operator" {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out = capture(t, "keys", "lookup", "--json", "--config", conf, "Bob@openpgp.example")
	var ans struct {
		Source string
		Keys   []struct{ Fingerprint string }
		Ladder []struct{ Source, Result string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &ans) != nil || ans.Source != "operator" || len(ans.Ladder) != 3 || ans.Ladder[1].Result != "skipped" {
		t.Fatalf("lookup: %d %s", code, out)
	}
	if code, out := capture(t, "keys", "lookup", "--config", conf, "nobody@openpgp.example"); code != 0 || !strings.Contains(out, "Answer: none") {
		t.Fatalf("lookup of nobody: %d %s", code, out)
	}
	if code, _ := capture(t, "keys", "remove", "--config", conf, "d1a66e1a23b182c9980f788cfbfcc82a015e7330"); code != 0 {
		t.Fatal("remove")
	}
	if code, _ := capture(t, "keys", "remove", "--config", conf, "D1A66E1A23B182C9980F788CFBFCC82A015E7330"); code != 1 {
		t.Fatal("second remove succeeded")
	}
	if code, _ := capture(t, "keys", "lookup", "--config", conf, "not-an-address"); code != 2 {
		t.Fatal("bad address: not a usage error")
	}
}
