package portal

import (
	"mime"
	"strings"
	"testing"
)

func TestCleanName(t *testing.T) {
	test := func(in, want string) {
		t.Helper()
		if got := cleanName(in); got != want {
			t.Errorf("cleanName(%q) = %q, want %q", in, got, want)
		}
	}
	test("report.pdf", "report.pdf")
	test("Gemeinde Übersicht.pdf", "Gemeinde Übersicht.pdf")
	test("تقرير.pdf", "تقرير.pdf") // right-to-left script itself is fine
	test("invoice\u202efdp.exe", "invoice\ufffdfdp.exe")
	for _, r := range []rune{0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069, 0x200e, 0x200f, 0x061c, 0x200b, 0xfeff, 0x2028, 0x2029, 0x00ad} {
		test("a"+string(r)+"b", "a\ufffdb")
	}
	test("tab\there\x00", "tab\ufffdhere\ufffd")
	test("bad\xffutf8", "bad\ufffdutf8")
}

func TestContentDisposition(t *testing.T) {
	test := func(name, want string) {
		t.Helper()
		got := contentDisposition(name)
		if got != want {
			t.Errorf("contentDisposition(%q) = %q, want %q", name, got, want)
		}
		// Whatever the name, the header parses and gives the cleaned name.
		if _, params, err := mime.ParseMediaType(got); err != nil || params["filename"] != cleanName(name) && !strings.Contains(got, "filename*") {
			t.Errorf("%q does not parse back: %v %v", got, params, err)
		}
	}
	test("report.pdf", `attachment; filename="report.pdf"`)
	test("invoice\u202efdp.exe", `attachment; filename="invoice_fdp.exe"; filename*=UTF-8''invoice%EF%BF%BDfdp.exe`)
	test(`a"b\c;d.txt`, `attachment; filename="a_b_c;d.txt"; filename*=UTF-8''a%22b%5Cc%3Bd.txt`)
	test("Übersicht 100%.pdf", `attachment; filename="_bersicht 100_.pdf"; filename*=UTF-8''%C3%9Cbersicht%20100%25.pdf`)
}

func TestMsgIDs(t *testing.T) {
	got := msgIDs("<a@b> junk <c.d@e>\r\n <bad id@x> <no-at> <\r\nX-Injected: 1@x> <x@y")
	if strings.Join(got, "|") != "a@b|c.d@e" {
		t.Fatalf("msgIDs: %q", got)
	}
	s := &Service{MACKey: []byte("k")}
	root := randomID()
	id := s.threadMessageID(root, "Jane@Citizen.example", "gw.example")
	r, mac, ok := threadCandidate(id)
	if !ok || r != root || mac != s.threadMAC(root, "jane@citizen.example") || len(msgIDs("<"+id+">")) != 1 {
		t.Fatalf("thread message id %q: %q %q %v", id, r, mac, ok)
	}
	if s.threadMAC(root, "bob@other.example") == mac || s.threadMAC(randomID(), "jane@citizen.example") == mac {
		t.Fatal("the thread token is not bound to its root and recipient")
	}
	for _, bad := range []string{"x@y", root + ".short.abc@h", root + "." + strings.Repeat("I", 24) + ".abc@h", "a.b.c.d@h"} {
		if _, _, ok := threadCandidate(bad); ok {
			t.Errorf("%q taken for a thread token", bad)
		}
	}
}
