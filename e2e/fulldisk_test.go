package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
)

// TestFullDiskAnswersTemporaryFailure puts the data directory on a 3 MiB
// tmpfs, fills it with messages the mail host cannot take, and checks that
// every refusal is a temporary failure with the right code, that every 250
// is in the queue, and that the gateway keeps running.
func TestFullDiskAnswersTemporaryFailure(t *testing.T) {
	need(t, "swaks")
	g := newGW(t, gwOptions{}) // mail host down: everything stays queued
	if err := syscall.Mount("tmpfs", g.dir, "tmpfs", 0, "size=3m"); err != nil {
		// Under SEALPOST_REQUIRE_TOOLS=1 (make test, CI) nothing skips: a
		// missing privilege is a failure, said plainly.
		if os.Getenv("SEALPOST_REQUIRE_TOOLS") == "1" {
			t.Fatalf("the full-disk test needs to mount a tmpfs (run as root, or with CAP_SYS_ADMIN): %v (euid %d)", err, os.Geteuid())
		}
		t.Skipf("cannot mount a tmpfs (%v); needs root", err)
	}
	t.Cleanup(func() { syscall.Unmount(g.dir, syscall.MNT_DETACH) })
	// The mount hid the config written before it: write it again.
	cfg := fmt.Sprintf(`data_dir = %q
[org]
domains = ["example.gov.uk"]
mail_host = %q
[smtp]
hostname = "gw.example.gov.uk"
inbound_listen = %q
outbound_listen = %q
[web]
listen = %q
public_url = "http://%s"
[dkim]
algorithm = "ed25519"
[inbound]
authenticate = false
`, g.dir, freePort(t), g.inbound, g.outbound, g.web, g.web)
	os.WriteFile(g.cfgPath, []byte(cfg), 0o600)
	g.start()

	body := strings.Repeat("this line fills the disk of the test gateway, line after line.\r\n", 3000) // ~190 KB
	bodyFile := t.TempDir() + "/body.txt"
	os.WriteFile(bodyFile, []byte(body), 0o600)
	accepted, refused := 0, 0
	codes := map[string]int{}
	for i := 0; i < 40 && refused < 3; i++ {
		out, code := swaks(t, "--server", g.inbound, "--from", "a@outside.example", "--to", "staff@example.gov.uk", "--body", "@"+bodyFile, "--header", fmt.Sprintf("Subject: fill %d", i))
		switch {
		case code == 0 && strings.Contains(out, "250 2.0.0 OK queued as"):
			accepted++
		case strings.Contains(out, "452 4.3.1"):
			refused++
			codes["452 4.3.1"]++
		case strings.Contains(out, "451 4.3.0"):
			refused++
			codes["451 4.3.0"]++
		default:
			t.Fatalf("message %d: neither accepted nor refused with 452 4.3.1 / 451 4.3.0 (exit %d):\n%s", i, code, out[max(0, len(out)-800):])
		}
	}
	if refused == 0 || accepted == 0 {
		t.Fatalf("accepted %d, refused %d: the disk never filled, or nothing fit", accepted, refused)
	}
	// The gateway is still up and answers.
	if out, code := swaks(t, "--server", g.inbound, "--quit-after", "EHLO"); code != 0 {
		t.Fatalf("gateway not answering after a full disk:\n%s", out)
	}
	// Every accepted message is queued (read while the gateway runs).
	cmd := exec.Command(binPath, "queue", "list", "--json", "--config", g.cfgPath)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("queue list: %v", err)
	}
	var list struct {
		Messages []json.RawMessage `json:"messages"`
	}
	json.Unmarshal(out, &list)
	if len(list.Messages) != accepted {
		t.Fatalf("%d messages accepted, %d in the queue", accepted, len(list.Messages))
	}
	t.Logf("3 MiB disk: %d messages of ~190 KB accepted, then %d refused with a temporary failure %v", accepted, refused, codes)
}
