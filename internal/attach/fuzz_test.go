package attach

import (
	"bytes"
	"testing"

	"sealpost/internal/dlp"
)

// FuzzCheck: any input is either refused as not a message or gives
// findings that each say what and where; never a panic. Identify on the
// raw bytes never panics either (it reads OLE, zip and 7z structures).
func FuzzCheck(f *testing.F) {
	f.Add(mail("a.exe", "application/octet-stream", []byte("MZ")))
	f.Add(mail("a.doc", "application/msword", buildOLE([]oleEntry{{name: "Macros", children: []oleEntry{{name: "VBA"}}}})))
	f.Add(wrap("Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"a.txt\"; filename*=UTF-8''a.exe", "eA=="))
	f.Add([]byte("7z\xbc\xaf\x27\x1c\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	c, err := New(dlp.Limits{MaxDepth: 4, MaxBytes: 1 << 20, MaxRatio: 100, Timeout: 2e9, MaxPart: 1 << 20})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		Identify(b, "", "x")
		Identify(b, "text/html", "")
		fs, err := c.Check(bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, x := range fs {
			if x.Kind == "" || x.Reason == "" {
				t.Fatalf("finding without kind or reason: %+v", x)
			}
		}
	})
}
