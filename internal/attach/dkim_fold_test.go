package attach

import (
	"strings"
	"testing"

	"sealpost/internal/dlp"
)

// A DKIM signature lists the fields it signs in h=, often folded right
// before or inside "Content-Type:Content-Transfer-Encoding": that is no
// hidden MIME field, and a signed message is not ambiguous. A folded line
// that really reads as a MIME field still is.
func TestSignedFieldListIsNotAHiddenHeader(t *testing.T) {
	c, err := New(dlp.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	sig := "DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.gov.uk;\r\n\ts=s1; h=From:To:Subject:\r\n\tContent-Type:Content-Transfer-Encoding:MIME-Version;\r\n\tbh=zS7KNTV0HyeorkDDGwxB1AV6enuRKzO5rthkhdHIRnY=; b=a+IEEOJD\r\n"
	for _, tc := range []struct {
		name, msg string
		dangerous bool
	}{
		{"signed", sig + "From: a@b.example\r\nTo: c@d.example\r\nSubject: x\r\n\r\nhello\r\n", false},
		{"signed list inline", "DKIM-Signature: v=1; h=MIME-Version:Content-Type:Content-Transfer-Encoding; b=x\r\nFrom: a@b.example\r\n\r\nhello\r\n", false},
		{"hidden field", "X-Note: see below\r\n\tContent-Type: application/zip; name=a.zip\r\nFrom: a@b.example\r\n\r\nhello\r\n", true},
	} {
		fs, err := c.Check(strings.NewReader(tc.msg))
		if err != nil {
			t.Fatal(err)
		}
		if got := len(fs) > 0; got != tc.dangerous {
			t.Errorf("%s: findings %+v; want dangerous=%v", tc.name, fs, tc.dangerous)
		}
	}
}
