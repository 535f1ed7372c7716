package web

import (
	"fmt"
	"strings"
	"testing"
)

// TestLinkify: links in plain text, without the punctuation after them.
func TestLinkify(t *testing.T) {
	test := func(in string, links ...string) {
		t.Helper()
		var got []string
		var whole strings.Builder
		for _, s := range linkify(in) {
			whole.WriteString(s.Text)
			if s.URL != "" {
				got = append(got, s.URL)
			}
		}
		if whole.String() != in {
			t.Errorf("%q: segments join to %q", in, whole.String())
		}
		if fmt.Sprint(got) != fmt.Sprint(links) {
			t.Errorf("%q: links %q, want %q", in, got, links)
		}
	}
	test("no links here")
	test("see https://a.example/x.", "https://a.example/x")
	test("(http://b.example/y?z=1), and https://c.example", "http://b.example/y?z=1", "https://c.example")
	test("javascript:alert(1) and ftp://x.example are not links")
	test("https:// alone")
}
