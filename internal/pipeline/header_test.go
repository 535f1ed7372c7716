package pipeline

import "testing"

func TestHeaderCapture(t *testing.T) {
	h := &HeaderCapture{Max: 1 << 10}
	msg := "Received: a\r\nReceived: b\r\nFrom: \"Ann\" <ann@Example.GOV.uk>\r\nSubject: =?utf-8?q?caf=C3=A9?= report\r\nMessage-ID: <x@y>\r\n\r\nFrom: not@header\r\n"
	for i := 0; i < len(msg); i += 7 {
		h.Write([]byte(msg[i:min(i+7, len(msg))]))
	}
	hi := h.Info()
	if hi.From != "ann@example.gov.uk" || hi.Subject != "café report" || hi.MessageID != "x@y" || hi.Received != 2 || hi.FromCount != 1 {
		t.Fatalf("%+v", hi)
	}
	h = &HeaderCapture{Max: 1 << 10}
	h.Write([]byte("From: a@b.example\r\nFrom: c@d.example\r\n\r\n"))
	if hi := h.Info(); hi.From != "" || hi.FromCount != 2 {
		t.Fatalf("two From fields: %+v", hi)
	}
}

func FuzzHeaderCapture(f *testing.F) {
	f.Add([]byte("From: a@b\r\nSubject: x\r\n\r\nbody"), 5)
	f.Add([]byte("\r\n\r\n"), 1)
	f.Fuzz(func(t *testing.T, in []byte, step int) {
		if step <= 0 {
			step = 1
		}
		h := &HeaderCapture{Max: 512}
		for i := 0; i < len(in); i += step {
			h.Write(in[i:min(i+step, len(in))])
		}
		if len(h.buf) > 512 {
			t.Fatalf("captured %d bytes, max 512", len(h.buf))
		}
		h.Info() // must not panic
	})
}
