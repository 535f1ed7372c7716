package tlsrpt

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Mail is what a report message needs besides the report.
type Mail struct {
	From      string // an address in a domain we sign for (§5.3: DKIM-signed)
	To        string // the mailto: rua's address
	Submitter string // our domain, as in TLS-Report-Submitter
	Date      time.Time
}

// WriteMessage writes the report as a mail message (RFC 8460 §5.3): a
// multipart/report with report-type "tlsrpt", a short text part and the
// gzip JSON as application/tlsrpt+gzip named as §5.1 says. The header
// carries TLS-Required: No (RFC 8689 §5) so that the report reaches a
// domain whose TLS is failing, which is the domain that needs it most.
func WriteMessage(w io.Writer, m Mail, r Report, gz []byte) error {
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return err
	}
	boundary := "tlsrpt-" + hex.EncodeToString(rnd[:])
	domain := r.PolicyDomain()
	bw := bufio.NewWriter(w)
	h := func(k, v string) { bw.WriteString(k + ": " + v + "\r\n") }
	h("From", "<"+m.From+">")
	h("To", "<"+m.To+">")
	h("Date", m.Date.UTC().Format(time.RFC1123Z))
	h("Subject", "Report Domain: "+domain+" Submitter: "+m.Submitter+" Report-ID: <"+r.ReportID+">")
	h("Message-ID", "<"+hex.EncodeToString(rnd[:])+"."+r.ReportID+">")
	h("TLS-Report-Domain", domain)
	h("TLS-Report-Submitter", m.Submitter)
	h("TLS-Required", "No")
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/report; report-type="tlsrpt"; boundary="`+boundary+`"`)
	bw.WriteString("\r\n--" + boundary + "\r\n")
	h("Content-Type", "text/plain; charset=utf-8")
	h("Content-Transfer-Encoding", "7bit")
	fmt.Fprintf(bw, "\r\nThis is an aggregate TLS report (RFC 8460) from %s for %s,\r\n%s to %s.\r\n",
		m.Submitter, domain, r.DateRange.Start.Format(time.RFC3339), r.DateRange.End.Format(time.RFC3339))
	bw.WriteString("\r\n--" + boundary + "\r\n")
	h("Content-Type", "application/tlsrpt+gzip")
	h("Content-Transfer-Encoding", "base64")
	h("Content-Disposition", `attachment; filename="`+FileName(m.Submitter, r)+`"`)
	bw.WriteString("\r\n")
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		bw.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	bw.WriteString(enc + "\r\n--" + boundary + "--\r\n")
	return bw.Flush()
}

// PolicyDomain is the policy domain a report is about: every policy in
// one report has the same (one report per policy domain).
func (r Report) PolicyDomain() string {
	if len(r.Policies) == 0 {
		return ""
	}
	return r.Policies[0].Policy.Domain
}

// FileName is the attachment's name (§5.1):
// sender "!" policy-domain "!" begin-timestamp "!" end-timestamp "!" unique-id ".json.gz",
// timestamps in seconds since the epoch.
func FileName(submitter string, r Report) string {
	id := strings.Map(func(c rune) rune {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' {
			return c
		}
		return '_'
	}, r.ReportID)
	return submitter + "!" + r.PolicyDomain() + "!" + strconv.FormatInt(r.DateRange.Start.Unix(), 10) + "!" +
		strconv.FormatInt(r.DateRange.End.Unix(), 10) + "!" + id + ".json.gz"
}
