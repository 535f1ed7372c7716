package clamd

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"sealpost/internal/clamd/clamdtest"
)

func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, network, addr string }{
		{"unix:/run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
		{"/run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
		{"127.0.0.1:3310", "tcp", "127.0.0.1:3310"},
		{"[::1]:3310", "tcp", "[::1]:3310"},
		{"", "", ""}, {"unix:relative", "", ""}, {"localhost", "", ""}, {":3310", "", ""},
	} {
		c, err := Parse(tc.in)
		if tc.network == "" {
			if err == nil {
				t.Errorf("%q: accepted", tc.in)
			}
			continue
		}
		if err != nil || c.Network != tc.network || c.Addr != tc.addr {
			t.Errorf("%q: %+v %v", tc.in, c, err)
		}
	}
}

// TestRealClamd scans with a real clamd and the test signature database:
// EICAR raw and zipped is found, clean content is clean, and a stopped
// clamd is an error (ErrUnavailable), never a clean verdict.
func TestRealClamd(t *testing.T) {
	t.Parallel()
	d := clamdtest.Start(t)
	ctx := context.Background()
	var zb bytes.Buffer
	zw := zip.NewWriter(&zb)
	w, _ := zw.Create("eicar.com")
	w.Write(clamdtest.EICAR())
	zw.Close()
	big := bytes.Repeat([]byte("clean text "), 30000) // several chunks
	for _, addr := range []string{"unix:" + d.Socket, d.TCP} {
		c, err := Parse(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("%s: ping: %v", addr, err)
		}
		for _, tc := range []struct {
			name string
			data []byte
			sig  string
		}{
			{"eicar", clamdtest.EICAR(), clamdtest.EICARSignature},
			{"zipped eicar", zb.Bytes(), clamdtest.EICARSignature},
			{"marker in a large stream", append(append(append([]byte{}, big...), clamdtest.Marker...), big...), clamdtest.MarkerSignature},
			{"clean", []byte("hello"), ""},
			{"clean large", big, ""},
		} {
			r, err := c.Scan(ctx, bytes.NewReader(tc.data))
			if err != nil {
				t.Fatalf("%s %s: %v", addr, tc.name, err)
			}
			if r.Infected != (tc.sig != "") || !strings.HasPrefix(r.Signature, tc.sig) {
				t.Errorf("%s %s: %+v", addr, tc.name, r)
			}
		}
	}
	d.Stop()
	for _, addr := range []string{"unix:" + d.Socket, d.TCP} {
		c, _ := Parse(addr)
		c.Timeout = 5 * time.Second
		if _, err := c.Scan(ctx, bytes.NewReader(clamdtest.EICAR())); !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: clamd stopped: %v", addr, err)
		}
	}
}

func TestParseScan(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in       string
		infected bool
		sig      string
		err      bool
	}{
		{"stream: OK", false, "", false},
		{"stream: Win.Test.EICAR_HDB-1 FOUND", true, "Win.Test.EICAR_HDB-1", false},
		{"INSTREAM size limit exceeded. ERROR", false, "", true},
		{"stream: Can't allocate memory ERROR", false, "", true},
		{"", false, "", true},
		{"OK", false, "", true},
	} {
		r, err := parseScan(tc.in)
		if (err != nil) != tc.err || r.Infected != tc.infected || r.Signature != tc.sig {
			t.Errorf("%q: %+v %v", tc.in, r, err)
		}
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Errorf("%q: error not ErrUnavailable", tc.in)
		}
	}
}

// FuzzParseScan: any reply is a verdict or ErrUnavailable, and "clean"
// only for exactly "stream: OK".
func FuzzParseScan(f *testing.F) {
	f.Add("stream: OK")
	f.Add("stream: X FOUND")
	f.Add("stream:  FOUND")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := parseScan(s)
		if err == nil && !r.Infected && strings.TrimSpace(s) != "stream: OK" {
			t.Fatalf("%q read as clean", s)
		}
		if err != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
	})
}
