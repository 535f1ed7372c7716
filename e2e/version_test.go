package e2e

import (
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestVersion: `sealpost version` and `sealpost --version` print the same
// build information, with exit 0, needing no configuration.
func TestVersion(t *testing.T) {
	dir := t.TempDir()
	var outs []string
	for _, args := range [][]string{{"version"}, {"--version"}} {
		cmd := exec.Command(binPath, args...)
		cmd.Dir = dir // no ./sealpost-data, no config
		cmd.Env = []string{"PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("sealpost %s: %v\n%s", args[0], err, out)
		}
		outs = append(outs, string(out))
	}
	if outs[0] != outs[1] {
		t.Fatalf("version and --version differ:\n%s\n%s", outs[0], outs[1])
	}
	if !strings.HasPrefix(outs[0], "sealpost ") || !strings.Contains(outs[0], "\n  commit  ") || !strings.Contains(outs[0], "\n  go      "+runtime.Version()+"\n") {
		t.Fatalf("version output:\n%s", outs[0])
	}
}
