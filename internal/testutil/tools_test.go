package testutil

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestNoUnguardedSkips: under SEALPOST_REQUIRE_TOOLS nothing may skip, so
// no test in the tree calls t.Skip itself; it calls Missing, which fails
// instead when tools are required. A skip is accepted only right after a
// check of RequireTools / SEALPOST_REQUIRE_TOOLS that fails first.
func TestNoUnguardedSkips(t *testing.T) {
	root := filepath.Join("..", "..")
	skip := regexp.MustCompile(`\bt\.Skip(f|Now)?\(`)
	var bad []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") || filepath.Base(filepath.Dir(path)) == "testutil" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if !skip.MatchString(l) {
				continue
			}
			guarded := false
			for j := max(0, i-4); j < i; j++ {
				guarded = guarded || strings.Contains(lines[j], "SEALPOST_REQUIRE_TOOLS") || strings.Contains(lines[j], "RequireTools()")
			}
			if !guarded {
				bad = append(bad, fmt.Sprintf("%s:%d: %s", path, i+1, strings.TrimSpace(l)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("tests that skip without failing under SEALPOST_REQUIRE_TOOLS (use testutil.Missing):\n%s", strings.Join(bad, "\n"))
	}
}
