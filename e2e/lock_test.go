package e2e

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// spoolTree lists every file under the spool with its size.
func spoolTree(t *testing.T, dir string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	filepath.WalkDir(filepath.Join(dir, "spool"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				out[p] = fi.Size()
			}
		}
		return nil
	})
	return out
}

// TestSecondServeOnSameDataDir: a second `serve` on a data directory in
// use stops at the lock, before it touches anything: the spool (with a
// message being received, in tmp/) is as it was, and the first gateway
// goes on. The CLI meanwhile changes the queue through the running
// gateway, and, once it is stopped, by taking the lock itself.
func TestSecondServeOnSameDataDir(t *testing.T) {
	need(t, "swaks")
	g := newGW(t, gwOptions{}) // mail host down: mail waits
	g.start()
	var ids []string
	for i := 0; i < 2; i++ {
		out, code := swaks(t, "--server", g.inbound, "--from", "a@outside.example", "--to", "staff@example.gov.uk", "--header", "Subject: waiting")
		if code != 0 {
			t.Fatal(out)
		}
		ids = append(ids, regexp.MustCompile(`queued as (\w+)`).FindStringSubmatch(out)[1])
	}
	inflight := filepath.Join(g.dir, "spool", "tmp", "being-received")
	if err := os.WriteFile(inflight, []byte("half a message"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := spoolTree(t, g.dir)

	// Same config, same ports: the lock is what stops it, and first.
	line := serveFails(t, g.cfgPath, "data directory "+g.dir+" in use by PID "+strconv.Itoa(g.cmd.Process.Pid))
	if strings.Contains(line, "address already in use") {
		t.Fatalf("stopped by a port, not by the lock: %s", line)
	}
	after := spoolTree(t, g.dir)
	if len(after) != len(before) {
		t.Fatalf("the second serve changed the spool:\nbefore %v\nafter  %v", before, after)
	}
	for p, n := range before {
		if after[p] != n {
			t.Fatalf("the second serve changed %s", p)
		}
	}
	if out, code := g.cli("queue", "list"); code != 0 || !strings.Contains(out, ids[0]) || !strings.Contains(out, ids[1]) {
		t.Fatalf("queue list (exit %d):\n%s", code, out)
	}

	// Through the running gateway (control socket): the gateway deletes.
	if fi, err := os.Stat(filepath.Join(g.dir, "control.sock")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", fi, err)
	}
	if out, code := g.cli("queue", "delete", ids[0]); code != 0 || !strings.Contains(out, ids[0]+": deleted from the queue") {
		t.Fatalf("queue delete through the gateway (exit %d):\n%s", code, out)
	}
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(g.out.String(), "queued message deleted"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the gateway did not do the delete:\n%s", g.out.String())
		}
	}
	g.stop()

	// No gateway: the CLI takes the lock and does it itself.
	if out, code := g.cli("queue", "delete", ids[1]); code != 0 || !strings.Contains(out, ids[1]+": deleted from the queue") {
		t.Fatalf("queue delete without a gateway (exit %d):\n%s", code, out)
	}
	if out, code := g.cli("queue", "delete", ids[1]); code != 1 || !strings.Contains(out, "nothing waiting") {
		t.Fatalf("second delete (exit %d):\n%s", code, out)
	}
	// Each delete recorded once, with the operator named by the gateway
	// from the socket's peer (not from the request) or by the CLI itself.
	exp, code := g.cli("audit", "export", "--from", "2020-01-01")
	if code != 0 {
		t.Fatalf("audit export (exit %d):\n%s", code, exp)
	}
	me := "cli"
	if u, err := user.Current(); err == nil {
		me = "cli:" + u.Username
	}
	count := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(exp), "\n") {
		var ev struct{ Action, Actor, Object string }
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Action == "queue.delete" {
			if ev.Actor != me {
				t.Errorf("queue.delete of %s by %q, want %q", ev.Object, ev.Actor, me)
			}
			count[ev.Object]++
		}
	}
	if count[ids[0]] != 1 || count[ids[1]] != 1 {
		t.Fatalf("queue.delete events %v, want one per message:\n%s", count, exp)
	}
	// The released gateway starts again on the same directory.
	g.start()
	time.Sleep(100 * time.Millisecond)
}
