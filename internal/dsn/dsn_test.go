package dsn

import (
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
	"testing"
	"time"
)

func write(t testing.TB, rep Report) []byte {
	var b bytes.Buffer
	if _, err := Write(&b, rep); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func sample() Report {
	return Report{
		ReportingMTA: "gw.example.gov.uk", To: "staff@example.gov.uk", OrigMsgID: "06h1abc",
		Received: time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC), Date: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC),
		Recipients: []Recipient{
			{Addr: "nobody@partner.example", Diagnostic: "550 5.1.1 no such user", RemoteMTA: "mx.partner.example:25"},
			{Addr: "slow@partner.example", Diagnostic: "451 4.2.0 busy", Expired: true},
			{Addr: "odd@partner.example", Diagnostic: "connection refused"},
		},
		Headers: []byte("From: staff@example.gov.uk\r\nSubject: report\r\n"),
	}
}

// parts parses a DSN the way a mail client would.
func parts(t testing.TB, msg []byte) (*mail.Message, []string, [][]byte) {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("not a message: %v", err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	var types []string
	var bodies [][]byte
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v", err)
		}
		b, _ := io.ReadAll(p)
		types = append(types, p.Header.Get("Content-Type"))
		bodies = append(bodies, b)
	}
	return m, types, bodies
}

func TestDSNStructure(t *testing.T) {
	msg := write(t, sample())
	if bytes.Contains(bytes.ReplaceAll(msg, []byte("\r\n"), nil), []byte("\n")) {
		t.Fatal("bare LF in DSN")
	}
	m, types, bodies := parts(t, msg)
	if m.Header.Get("Auto-Submitted") != "auto-replied" || m.Header.Get("To") != "<staff@example.gov.uk>" {
		t.Fatalf("header %v", m.Header)
	}
	if strings.Join(types, ",") != "text/plain; charset=us-ascii,message/delivery-status,text/rfc822-headers" {
		t.Fatalf("parts %v", types)
	}
	status := string(bodies[1])
	for _, want := range []string{"Reporting-MTA: dns; gw.example.gov.uk", "Final-Recipient: rfc822; nobody@partner.example", "Status: 5.1.1", "Remote-MTA: dns; mx.partner.example:25", "Status: 4.4.7", "Status: 5.0.0"} {
		if !strings.Contains(status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, status)
		}
	}
	if !strings.Contains(string(bodies[2]), "Subject: report") {
		t.Errorf("original header missing")
	}
}

// FuzzDSN: whatever the diagnostic and address text (a remote server
// chooses it), the DSN stays one well-formed message: no header injection,
// no bare line endings.
func FuzzDSN(f *testing.F) {
	f.Add("550 5.1.1 x", "a@b.example", []byte("Subject: x\r\n"))
	f.Add("x\r\nBcc: victim@example\r\n", "a@b\r\nX: y", []byte("\n\n"))
	f.Fuzz(func(t *testing.T, diag, addr string, hdr []byte) {
		rep := sample()
		rep.Recipients = []Recipient{{Addr: addr, Diagnostic: diag}}
		rep.To = addr
		if bytes.ContainsAny(hdr, "\r\n") {
			hdr = nil // the header section comes from our strict spool: CRLF lines only
		}
		rep.Headers = hdr
		msg := write(t, rep)
		m, _, _ := parts(t, msg)
		for k := range m.Header {
			switch k {
			case "From", "To", "Subject", "Date", "Message-Id", "Auto-Submitted", "Mime-Version", "Content-Type":
			default:
				t.Fatalf("unexpected header field %q", k)
			}
		}
	})
}
