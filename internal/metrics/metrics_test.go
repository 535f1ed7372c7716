package metrics

import (
	"strings"
	"testing"
)

// The Go release of the build is not published: go_info carries it as a
// label, so it is left out; the rest of the runtime metrics stay.
func TestNoGoVersion(t *testing.T) {
	mfs, err := New().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := false
	for _, mf := range mfs {
		if mf.GetName() == "go_info" {
			t.Fatalf("go_info is exported: %v", mf)
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), "go1.") {
					t.Errorf("%s has the Go version in label %s", mf.GetName(), l.GetName())
				}
			}
		}
		seen = seen || mf.GetName() == "go_goroutines"
	}
	if !seen {
		t.Error("the Go runtime metrics are gone too")
	}
}
