// Package dsn writes delivery status notifications (RFC 3464): the bounce a
// sender gets when a message cannot be delivered. A DSN is a
// multipart/report (RFC 6522) with a human-readable part, a
// message/delivery-status part and the original message's header
// (text/rfc822-headers), never its body: the body may be sensitive, and the
// sender has it.
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"
)

// Recipient is one failed recipient.
type Recipient struct {
	Addr       string
	Action     string // "failed" or "delayed"
	Diagnostic string // the next hop's answer or the local reason
	RemoteMTA  string
	Expired    bool
	// TLS says how the last attempt's TLS was decided and what it proved
	// (mode, why, certificate check), for the sender and their help desk.
	TLS string
}

// Report is what goes into one DSN.
type Report struct {
	ReportingMTA string // our host name
	To           string // the original sender
	OrigMsgID    string // our queue id of the original message
	Received     time.Time
	Date         time.Time
	Recipients   []Recipient
	Headers      []byte // header section of the original message, CRLF lines
}

var enhancedRe = regexp.MustCompile(`\b([245])\.(\d{1,3})\.(\d{1,3})\b`)

// Status is the RFC 3463 status for a recipient.
func (r Recipient) Status() string {
	if m := enhancedRe.FindString(r.Diagnostic); m != "" && (m[0] == '5' || m[0] == '4') {
		if r.Expired {
			return "4.4.7"
		}
		return "5" + m[1:]
	}
	if r.Expired {
		return "4.4.7" // RFC 3463: delivery time expired
	}
	return "5.0.0"
}

// clean makes s safe for a header field: printable ASCII on one line.
func clean(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			b.WriteByte(' ')
		case r < 0x20 || r > 0x7e:
			b.WriteByte('?')
		default:
			b.WriteRune(r)
		}
	}
	out := b.String()
	if len(out) > 900 {
		out = out[:900]
	}
	return out
}

// Write writes the DSN message (CRLF line endings) and returns its subject.
func Write(w io.Writer, rep Report) (string, error) {
	var rnd [12]byte
	rand.Read(rnd[:])
	boundary := "=_report_" + hex.EncodeToString(rnd[:])
	subject := "Undelivered Mail Returned to Sender"
	bw := bufio.NewWriter(w)
	p := func(format string, args ...any) { fmt.Fprintf(bw, format+"\r\n", args...) }
	date := rep.Date.Format(time.RFC1123Z)
	p("From: Mail Delivery System <MAILER-DAEMON@%s>", clean(rep.ReportingMTA))
	p("To: <%s>", clean(rep.To))
	p("Subject: %s", subject)
	p("Date: %s", date)
	p("Message-ID: <%s.dsn@%s>", hex.EncodeToString(rnd[:8]), clean(rep.ReportingMTA))
	p("Auto-Submitted: auto-replied") // RFC 3834 §5
	p("MIME-Version: 1.0")
	p(`Content-Type: multipart/report; report-type=delivery-status; boundary="%s"`, boundary)
	p("")
	p("This is a MIME-encapsulated delivery status notification.")
	p("")
	p("--%s", boundary)
	p("Content-Type: text/plain; charset=us-ascii")
	p("")
	p("Your message could not be delivered to one or more recipients.")
	p("It was received by %s at %s (reference %s).", clean(rep.ReportingMTA), rep.Received.UTC().Format(time.RFC1123Z), clean(rep.OrigMsgID))
	p("")
	for _, r := range rep.Recipients {
		p("<%s>:", clean(r.Addr))
		if r.Expired {
			p("    delivery was given up after repeated temporary failures; the last was:")
		}
		p("    %s", clean(r.Diagnostic))
		if r.TLS != "" {
			p("    TLS: %s", clean(r.TLS))
		}
		p("")
	}
	p("--%s", boundary)
	p("Content-Type: message/delivery-status")
	p("")
	p("Reporting-MTA: dns; %s", clean(rep.ReportingMTA))
	p("X-Queue-ID: %s", clean(rep.OrigMsgID))
	p("Arrival-Date: %s", rep.Received.Format(time.RFC1123Z))
	for _, r := range rep.Recipients {
		p("")
		p("Final-Recipient: rfc822; %s", clean(r.Addr))
		action := r.Action
		if action == "" {
			action = "failed"
		}
		p("Action: %s", action)
		p("Status: %s", r.Status())
		if r.RemoteMTA != "" {
			p("Remote-MTA: dns; %s", clean(r.RemoteMTA))
		}
		if r.Diagnostic != "" {
			p("Diagnostic-Code: smtp; %s", clean(r.Diagnostic))
		}
	}
	p("")
	p("--%s", boundary)
	p("Content-Type: text/rfc822-headers")
	p("")
	hdr := bytes.TrimRight(rep.Headers, "\r\n")
	bw.Write(hdr)
	p("")
	p("")
	p("--%s--", boundary)
	return subject, bw.Flush()
}

// ReadHeader returns the header section of a message (up to max bytes,
// whole lines), without the blank line that ends it.
func ReadHeader(r io.Reader, max int) []byte {
	br := bufio.NewReader(io.LimitReader(r, int64(max)))
	var out []byte
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return out // header longer than max or no body: what we have
		}
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return out
		}
		out = append(out, line...)
	}
}
