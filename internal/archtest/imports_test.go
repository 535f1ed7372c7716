package archtest

import (
	"bufio"
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// protocol are the packages that speak a protocol or read a format: they
// know nothing of storage, the queue, the wiring or the configuration, so
// each can be tested on its own and reused (a "/..." suffix takes the
// package and those under it).
var protocol = []string{
	"sealpost/internal/smtpd",
	"sealpost/internal/mime",
	"sealpost/internal/dlp",
	"sealpost/internal/mailauth/...",
	"sealpost/internal/dns",
	"sealpost/internal/deliver",
	"sealpost/internal/pipeline",
	"sealpost/internal/smime",
	"sealpost/internal/cms",
	"sealpost/internal/pgp",
	"sealpost/internal/tlspolicy",
}

// forbidden may not be among a protocol package's dependencies, direct or
// indirect.
var forbidden = []string{
	"sealpost/internal/store",
	"sealpost/internal/queue",
	"sealpost/internal/gateway",
	"sealpost/internal/config",
}

// known are the edges that exist today and are to go, each with the step
// that removes it. A known edge that is gone fails the test too, so this
// list only shrinks.
var known = map[string]string{
	// deliver implements queue.Transport over queue.Delivery, which
	// carries a *store.Message: the shared vocabulary moves to
	// internal/envelope (DESIGN.md step 2).
	"sealpost/internal/deliver -> sealpost/internal/queue": "envelope",
	"sealpost/internal/deliver -> sealpost/internal/store": "envelope",
}

// TestProtocolPackagesKnowNoStorage reads `go list -deps` for every
// protocol package and fails on each forbidden dependency, naming the
// import chain's first step so the fix is clear.
func TestProtocolPackagesKnowNoStorage(t *testing.T) {
	t.Parallel()
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	args := append([]string{"list", "-e", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}|{{with .Error}}{{.Err}}{{end}}"}, protocol...)
	cmd := exec.Command(goTool, args...)
	cmd.Dir = "../.."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	seen := map[string]bool{}
	listed := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		parts := strings.Split(sc.Text(), "|")
		if len(parts) != 4 {
			t.Fatalf("go list line %q", sc.Text())
		}
		if parts[3] != "" {
			t.Errorf("%s: %s", parts[0], parts[3])
			continue
		}
		pkg, imports, deps := parts[0], strings.Fields(parts[1]), strings.Fields(parts[2])
		listed++
		for _, f := range forbidden {
			for _, d := range deps {
				if d != f {
					continue
				}
				edge := pkg + " -> " + f
				if _, ok := known[edge]; ok {
					seen[edge] = true
					continue
				}
				t.Errorf("%s depends on %s (through %s): protocol packages must not know the store, queue, gateway or config", pkg, f, via(imports, f))
			}
		}
	}
	if listed < len(protocol) {
		t.Fatalf("go list gave %d packages for %d patterns:\n%s", listed, len(protocol), out)
	}
	for edge, step := range known {
		if !seen[edge] {
			t.Errorf("known edge %s (to go with %s) is gone: remove it from the list", edge, step)
		}
	}
}

// via names the direct import that leads to f (f itself when direct).
func via(imports []string, f string) string {
	for _, i := range imports {
		if i == f {
			return "a direct import"
		}
	}
	return "an indirect import; see go list -deps"
}
