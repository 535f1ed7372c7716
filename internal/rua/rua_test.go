package rua

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../testdata/rua/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gz(b []byte) []byte {
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

func zipped(name string, b []byte) []byte {
	var out bytes.Buffer
	w := zip.NewWriter(&out)
	f, _ := w.Create(name)
	f.Write(b)
	w.Close()
	return out.Bytes()
}

func TestAggregate(t *testing.T) {
	t.Parallel()
	g := read(t, "google.xml")
	for _, data := range [][]byte{g, gz(g), zipped("google.com!example.gov.uk!1764028800!1764115199.xml", g)} {
		r, err := ParseAggregate(data)
		if err != nil {
			t.Fatal(err)
		}
		if r.Metadata.OrgName != "google.com" || r.Policy.Domain != "example.gov.uk" || len(r.Records) != 3 {
			t.Fatalf("%+v", r)
		}
		if b, _ := r.Period(); b.Format("2006-01-02") != "2025-11-25" {
			t.Fatalf("period %v", b)
		}
	}
	r2, err := ParseAggregate(read(t, "dmarc2.xml"))
	if err != nil {
		t.Fatal(err)
	}
	r1, _ := ParseAggregate(g)
	src := Sources(r1, r2)
	if len(src) != 4 {
		t.Fatalf("%+v", src)
	}
	// Most failing first: the spoofer, then the unsigned newsletter.
	if src[0].IP != "203.0.113.9" || src[0].Fail != 41 || !strings.Contains(src[0].Fix, "someone else") {
		t.Fatalf("first %+v", src[0])
	}
	if src[1].IP != "198.51.100.7" || src[1].Fail != 14 {
		t.Fatalf("second %+v", src[1])
	}
	for _, s := range src {
		switch s.IP {
		case "192.0.2.25":
			if s.Pass != 120 || s.Fix != "" {
				t.Errorf("%+v", s)
			}
		case "2001:db8::25":
			if s.Pass != 3 || s.DKIMFail != 3 || !strings.Contains(s.Fix, "DKIM") {
				t.Errorf("%+v", s)
			}
		}
	}
}

func TestAggregateRefused(t *testing.T) {
	t.Parallel()
	for name, data := range map[string]string{
		"not xml":    "hello",
		"wrong root": "<html></html>",
		"no domain":  "<feedback><record><row><source_ip>192.0.2.1</source_ip></row></record></feedback>",
		"bad ip":     "<feedback><policy_published><domain>x.example</domain></policy_published><record><row><source_ip>nope</source_ip></row></record></feedback>",
		"negative":   "<feedback><policy_published><domain>x.example</domain></policy_published><record><row><source_ip>192.0.2.1</source_ip><count>-5</count></row></record></feedback>",
		"zip of two": string(func() []byte {
			var b bytes.Buffer
			w := zip.NewWriter(&b)
			w.Create("a")
			w.Create("b")
			w.Close()
			return b.Bytes()
		}()),
		"gzip too big": string(gz(bytes.Repeat([]byte(" "), MaxReport+10))),
	} {
		if _, err := ParseAggregate([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestTLSReport(t *testing.T) {
	t.Parallel()
	j := read(t, "tlsrpt.json")
	for _, data := range [][]byte{j, gz(j)} {
		r, err := ParseTLSReport(data)
		if err != nil {
			t.Fatal(err)
		}
		if r.OrganizationName != "Company-X" || len(r.Policies) != 1 || r.Policies[0].Summary.Failure != 303 {
			t.Fatalf("%+v", r)
		}
	}
	r, _ := ParseTLSReport(j)
	src := TLSSources(r)
	if len(src) != 4 || src[0].MX != "" || src[0].Success != 5326 || src[0].Failure != 303 {
		t.Fatalf("%+v", src)
	}
	want := map[string]string{
		"mx1.mail.example.gov.uk":       "renew the certificate",
		"mx2.mail.example.gov.uk":       "offer STARTTLS",
		"mx-backup.mail.example.gov.uk": "publicly trusted certificate",
	}
	for _, s := range src[1:] {
		if w := want[s.MX]; w == "" || len(s.Fix) != 1 || !strings.Contains(s.Fix[0], w) {
			t.Errorf("%+v", s)
		}
	}
	for name, data := range map[string]string{"not json": "<x>", "no policies": `{"policies":[]}`, "no domain": `{"policies":[{"policy":{}}]}`} {
		if _, err := ParseTLSReport([]byte(data)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzParse: any input is a report or an error, never a panic, and the
// sums of a parsed report never count fewer messages than pass and fail.
func FuzzParse(f *testing.F) {
	for _, n := range []string{"google.xml", "dmarc2.xml", "tlsrpt.json"} {
		b, err := os.ReadFile("../../testdata/rua/" + n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := ParseAggregate(b); err == nil {
			for _, s := range Sources(r) {
				if s.Pass+s.Fail != s.Messages {
					t.Fatalf("%+v", s)
				}
			}
		}
		if r, err := ParseTLSReport(b); err == nil {
			TLSSources(r)
		}
	})
}
