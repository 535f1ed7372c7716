package encrypt

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/quotedprintable"
	"strings"
)

// maxHeader bounds the header of an encrypted message read back here (it
// is our own output: a few KiB at most).
const maxHeader = 1 << 20

// WrapWithPreamble writes enc (a whole encrypted message, PGP/MIME or
// S/MIME, as this package or the S/MIME transport wrote it) to dst inside
// a multipart/mixed whose first part is text, a short plaintext preamble,
// and whose second part is the encrypted entity itself.
//
// RFC 3156 §4 allows nothing but the two parts inside multipart/encrypted,
// so the preamble cannot go there; a multipart/mixed around it is what
// Thunderbird (and Enigmail before it) and S/MIME clients open: they
// decrypt the inner part and show the text beside it. The header fields
// that describe the content (Content-*) move to the inner part; all others
// (From, To, Subject, Date, Message-ID …) stay outside.
func WrapWithPreamble(dst io.Writer, enc io.Reader, text string) error {
	br := bufio.NewReader(enc)
	var outer, inner []string // whole fields, folded lines kept
	var last *[]string        // the list the field read last went to; nil: dropped
	n := 0
	for {
		line, err := br.ReadString('\n')
		n += len(line)
		if n > maxHeader {
			return errors.New("the encrypted message's header is too long")
		}
		if err != nil {
			return fmt.Errorf("the encrypted message has no end of header: %w", err)
		}
		if line == "\r\n" || line == "\n" {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// A continuation belongs to the field read last.
			if last != nil && len(*last) > 0 {
				(*last)[len(*last)-1] += crlf(line)
			} else if len(outer)+len(inner) == 0 {
				return errors.New("the encrypted message starts with a continuation line")
			}
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		if !ok {
			return errors.New("the encrypted message has a header line without a colon")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		switch {
		case name == "mime-version":
			last = nil // written again below, once
		case strings.HasPrefix(name, "content-"):
			inner = append(inner, crlf(line))
			last = &inner
		default:
			outer = append(outer, crlf(line))
			last = &outer
		}
	}
	if len(inner) == 0 {
		return errors.New("the encrypted message has no Content-Type")
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	// "=_" cannot occur in base64 or in an OpenPGP armour.
	boundary := "=_" + hex.EncodeToString(b)
	w := bufio.NewWriter(dst)
	for _, f := range outer {
		w.WriteString(f)
	}
	fmt.Fprintf(w, "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n", boundary)
	fmt.Fprintf(w, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	var qp bytes.Buffer
	q := quotedprintable.NewWriter(&qp)
	q.Write([]byte(strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\n", "\r\n")))
	q.Close()
	w.Write(qp.Bytes())
	fmt.Fprintf(w, "\r\n--%s\r\n", boundary)
	for _, f := range inner {
		w.WriteString(f)
	}
	w.WriteString("\r\n")
	if _, err := io.Copy(w, br); err != nil {
		return err
	}
	fmt.Fprintf(w, "\r\n--%s--\r\n", boundary)
	return w.Flush()
}

func crlf(line string) string {
	return strings.TrimRight(line, "\r\n") + "\r\n"
}
