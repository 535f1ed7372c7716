package inbound

import (
	"bytes"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/dkim"
)

// headerEnd returns the length of the header section including the blank
// line, or len(msg) for a message that is all header.
func headerEnd(msg []byte) int {
	if bytes.HasPrefix(msg, []byte("\r\n")) {
		return 2
	}
	if i := bytes.Index(msg, []byte("\r\n\r\n")); i >= 0 {
		return i + 4
	}
	return len(msg)
}

// fields splits a header section into its fields, each with its folded
// continuation lines and line ends.
func fields(head []byte) [][]byte {
	var out [][]byte
	for len(head) > 0 {
		n := 0
		for {
			i := bytes.Index(head[n:], []byte("\r\n"))
			if i < 0 {
				n = len(head)
				break
			}
			n += i + 2
			if n >= len(head) || (head[n] != ' ' && head[n] != '\t') {
				break
			}
		}
		out = append(out, head[:n])
		head = head[n:]
	}
	return out
}

// authservID returns the authserv-id of an Authentication-Results value
// (RFC 8601 §2.2): the first token after any comments, unquoted.
func authservID(v string) string {
	v = strings.TrimSpace(stripComments(v))
	if strings.HasPrefix(v, `"`) {
		if end := strings.IndexByte(v[1:], '"'); end >= 0 {
			return v[1 : end+1]
		}
	}
	if i := strings.IndexAny(v, "; \t\r\n"); i >= 0 {
		v = v[:i]
	}
	return v
}

func stripComments(v string) string {
	var b strings.Builder
	depth := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && depth > 0:
			i++
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case depth == 0:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// StripForgedResults removes the Authentication-Results fields whose
// authserv-id is ours: RFC 8601 §5 requires a border MTA to remove them,
// since only we may speak as us and the mail host trusts what we say. The
// comparison ignores case (authserv-id is a domain name in practice).
func StripForgedResults(msg []byte, authServID string) ([]byte, int) {
	end := headerEnd(msg)
	fs := fields(msg[:end])
	var keep [][]byte
	removed := 0
	for _, f := range fs {
		name, val, ok := bytes.Cut(f, []byte(":"))
		if ok && strings.EqualFold(strings.TrimRight(string(name), " \t"), "Authentication-Results") &&
			strings.EqualFold(strings.TrimSuffix(authservID(string(val)), "."), strings.TrimSuffix(authServID, ".")) {
			removed++
			continue
		}
		keep = append(keep, f)
	}
	if removed == 0 {
		return msg, 0
	}
	out := make([]byte, 0, len(msg))
	for _, f := range keep {
		out = append(out, f...)
	}
	return append(out, msg[end:]...), removed
}

// headerFromDomain returns the RFC5322.From domain. DMARC needs exactly
// one (RFC 9989 §4.4): no From field, several, an unparseable one or
// authors in more than one domain are errors.
func headerFromDomain(msg []byte) (string, error) {
	end := headerEnd(msg)
	var vals []string
	for _, f := range fields(msg[:end]) {
		name, val, ok := bytes.Cut(f, []byte(":"))
		if ok && strings.EqualFold(strings.TrimRight(string(name), " \t"), "From") {
			vals = append(vals, strings.NewReplacer("\r\n", "").Replace(string(val)))
		}
	}
	switch len(vals) {
	case 0:
		return "", errors.New("the message has no From header field (RFC 5322 §3.6)")
	case 1:
	default:
		return "", errors.New("the message has more than one From header field (RFC 5322 §3.6)")
	}
	p := mail.AddressParser{WordDecoder: &mime.WordDecoder{}}
	list, err := p.ParseList(strings.TrimSpace(vals[0]))
	if err != nil || len(list) == 0 {
		return "", fmt.Errorf("the From header field cannot be parsed as an address")
	}
	dom := ""
	for _, a := range list {
		i := strings.LastIndexByte(a.Address, '@')
		if i < 0 {
			return "", errors.New("a From address has no domain")
		}
		d := dns.Normalise(a.Address[i+1:])
		if dom != "" && d != dom {
			return "", errors.New("the From header field names authors in more than one domain")
		}
		dom = d
	}
	if dom == "" || strings.ContainsAny(dom, " []") {
		return "", errors.New("the From domain is not a domain name")
	}
	return dom, nil
}

// resinfo builds the results (RFC 8601 §2.2, methods from §2.7 and RFC
// 8617 §4.1.1/RFC 7489 §11.2), first arc= so that the AAR carries it.
func (e *Evaluator) resinfo(v *Verdict) []string {
	var out []string
	out = append(out, "arc="+string(v.ARC.Status)+comment(arcCommentOf(v)))
	s := "spf=" + string(v.SPF.Status)
	if v.SPF.Identity == "helo" {
		s += " smtp.helo=" + pvalue(v.SPF.Domain)
	} else if v.SPF.Sender != "" {
		s += " smtp.mailfrom=" + pvalue(v.SPF.Sender)
	}
	out = append(out, s+reason(v.SPF.Reason))
	for _, d := range v.DKIM {
		s := "dkim=" + string(d.Status)
		if d.Status == dkim.None {
			out = append(out, s)
			continue
		}
		if d.KeyBit > 0 {
			s += fmt.Sprintf(" (%d-bit key)", d.KeyBit)
		}
		if d.Domain != "" {
			s += " header.d=" + pvalue(d.Domain) + " header.s=" + pvalue(d.Selector) + " header.a=" + pvalue(d.Algorithm)
		}
		if d.B != "" {
			s += " header.b=" + pvalue(d.B)
		}
		if d.Status != dkim.Pass {
			s += reason(d.Reason)
		}
		out = append(out, s)
	}
	s = "dmarc=" + v.DMARC.Status
	if v.DMARC.Policy != "" {
		s += fmt.Sprintf(" (p=%s)", v.DMARC.Published)
	}
	if v.From != "" {
		s += " header.from=" + pvalue(v.From)
	}
	if v.DMARC.Status != "pass" && v.DMARC.Reason != "" {
		s += reason(v.DMARC.Reason)
	}
	out = append(out, s)
	return out
}

func arcCommentOf(v *Verdict) string {
	if v.ARC.Status == "fail" {
		return v.ARC.Reason
	}
	return ""
}

// pvalue writes a property value (RFC 8601 §2.2): a token, an address or
// a domain as is, anything else as a quoted string.
func pvalue(s string) string {
	ok := s != ""
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-_+@=/!#$%&'*^`{|}~", c)) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return quote(s)
}

func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, c := range s {
		switch {
		case c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteRune(c)
		case c < ' ' || c >= 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// reason is RFC 8601 §2.2's reasonspec, kept short.
func reason(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200]
	}
	return " reason=" + quote(s)
}

func comment(s string) string {
	if s == "" {
		return ""
	}
	if len(s) > 200 {
		s = s[:200]
	}
	s = strings.NewReplacer("(", "[", ")", "]", "\\", "/", "\r", " ", "\n", " ").Replace(s)
	return " (" + s + ")"
}

// foldAR writes the Authentication-Results field, one result a line.
func foldAR(id string, results []string) string {
	var b strings.Builder
	b.WriteString("Authentication-Results: " + id)
	for _, r := range results {
		b.WriteString(";\r\n\t" + r)
	}
	b.WriteString("\r\n")
	return b.String()
}
