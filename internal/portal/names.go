package portal

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// cleanName makes a name from a message (an attachment's file name, a
// display name) safe to show and to hand to a browser: control and format
// characters become U+FFFD, visibly. Format characters (Unicode category
// Cf) include the bidirectional controls U+202A–U+202E, U+2066–U+2069,
// U+200E/U+200F and U+061C, with which "invoice\u202Efdp.exe" shows as
// "invoiceexe.pdf" (the "right-to-left override" trick), and the
// zero-width characters that hide a difference between two names. Line
// and paragraph separators go too; invalid UTF-8 becomes U+FFFD.
func cleanName(s string) string {
	if !strings.ContainsFunc(s, unsafeRune) && utf8.ValidString(s) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if unsafeRune(r) {
			return utf8.RuneError
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
}

func unsafeRune(r rune) bool {
	return unicode.Is(unicode.Cf, r) || unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp)
}

// contentDisposition is an attachment's Content-Disposition (RFC 6266):
// filename* with the cleaned name in UTF-8 (RFC 8187), and filename with an
// ASCII rendering of it for clients that do not read filename*.
func contentDisposition(name string) string {
	name = cleanName(name)
	ascii := strings.Map(func(r rune) rune {
		if r < 0x20 || r >= 0x7f || r == '"' || r == '\\' || r == '/' || r == '%' {
			return '_'
		}
		return r
	}, name)
	v := `attachment; filename="` + ascii + `"`
	if ascii != name {
		v += "; filename*=UTF-8''" + extValue(name)
	}
	return v
}

// extValue percent-encodes s but for RFC 8187's attr-char.
func extValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// listed returns attachments with their names as the portal shows them.
func listed(atts []Attachment) []Attachment {
	out := make([]Attachment, len(atts))
	for i, a := range atts {
		a.Name = cleanName(a.Name)
		out[i] = a
	}
	return out
}
