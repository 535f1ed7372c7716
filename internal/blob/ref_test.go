package blob_test

import (
	"path/filepath"
	"strings"
	"testing"

	"sealpost/internal/blob"
)

// FuzzRef: a Ref that Check accepts names a path inside the file
// backend's root (no "..", not absolute, no hidden or temporary names),
// and an S3 key that is the Ref itself.
func FuzzRef(f *testing.F) {
	for _, s := range []string{"ab/abcdef", "ab/abcdef.1", "../x", "a/../b", "/abs", "a//b", ".tmp-1", "a/.b", "a\\b", "a\x00b", "q/m=1-x_y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if blob.Ref(s).Check() != nil {
			return
		}
		root := "/data/portal"
		p := filepath.Join(root, filepath.FromSlash(s))
		if !strings.HasPrefix(p, root+"/") || filepath.Clean(p) != p || p == root {
			t.Fatalf("ref %q leaves the root: %s", s, p)
		}
		for _, seg := range strings.Split(s, "/") {
			if seg == "" || seg == "." || seg == ".." || strings.HasPrefix(seg, ".") {
				t.Fatalf("ref %q has segment %q", s, seg)
			}
		}
	})
}
