package pipeline

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"
	"unicode/utf8"

	mimex "sealpost/internal/mime"
)

// Visible returns the addresses in To and Cc.
func Visible(h mail.Header) []string {
	if h == nil {
		return nil
	}
	var out []string
	for _, k := range []string{"To", "Cc"} {
		v := h.Get(k)
		if v == "" {
			continue
		}
		if list, err := (&mail.AddressParser{WordDecoder: mimex.WordDecoder()}).ParseList(v); err == nil {
			for _, a := range list {
				out = append(out, a.Address)
			}
			continue
		}
		// Not a valid list: count what looks like addresses.
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ';' || r == ' ' || r == '<' || r == '>' }) {
			if strings.Contains(f, "@") {
				out = append(out, f)
			}
		}
	}
	return out
}

// HasKeyword reports whether subject contains one of the sender keywords.
func HasKeyword(subject string, kws []string) bool {
	_, changed := stripKeywords(subject, kws)
	return changed
}

// stripKeywords removes the keywords (case-insensitive) from s.
func stripKeywords(s string, kws []string) (string, bool) {
	changed := false
	for _, k := range kws {
		if k == "" {
			continue
		}
		for i := 0; i+len(k) <= len(s); {
			if strings.EqualFold(s[i:i+len(k)], k) {
				s = s[:i] + s[i+len(k):]
				changed = true
				continue
			}
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
		}
	}
	if changed {
		s = strings.Join(strings.Fields(s), " ")
	}
	return s, changed
}

// RewriteSubject removes the sender keywords from the Subject field of a
// header section; nil if there is nothing to change.
func RewriteSubject(h []byte, kws []string) []byte {
	if len(kws) == 0 {
		return nil
	}
	lines := bytes.SplitAfter(h, []byte("\r\n"))
	for i := 0; i < len(lines); i++ {
		if len(lines[i]) < 8 || !bytes.EqualFold(lines[i][:8], []byte("subject:")) {
			continue
		}
		end := i + 1
		for end < len(lines) && len(lines[end]) > 0 && (lines[end][0] == ' ' || lines[end][0] == '\t') {
			end++
		}
		raw := string(bytes.Join(lines[i:end], nil))
		raw = strings.ReplaceAll(strings.TrimSuffix(raw[8:], "\r\n"), "\r\n", "")
		dec := mimex.DecodeHeader(strings.TrimSpace(raw))
		clean, changed := stripKeywords(dec, kws)
		if !changed {
			return nil
		}
		enc := clean
		for _, r := range clean {
			if r >= 0x80 || r < 0x20 {
				enc = mime.QEncoding.Encode("utf-8", clean)
				break
			}
		}
		var out bytes.Buffer
		for _, l := range lines[:i] {
			out.Write(l)
		}
		out.WriteString("Subject: " + enc + "\r\n")
		for _, l := range lines[end:] {
			out.Write(l)
		}
		return out.Bytes()
	}
	return nil
}
