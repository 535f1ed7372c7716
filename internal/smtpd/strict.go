package smtpd

import (
	"errors"
	"io"
)

// Errors of the strict DATA reader.
var (
	errBareLF = errors.New("bare LF")
	errBareCR = errors.New("bare CR")
	errNUL    = errors.New("NUL byte")
)

// strictReader passes message data through and fails at the first line
// ending that is not CRLF, and at any NUL byte.
//
// RFC 5321 §2.3.8 allows CR and LF only together as CRLF. A bare LF or CR
// is how SMTP smuggling works: a server that reads "\n.\n" as the end of
// DATA runs the text after it as new commands, in this session's name.
// go-smtp ends DATA only at CRLF.CRLF, so we never act on smuggled
// commands; and because we relay, we also refuse the message, or the next
// hop (which may be lax) would see the smuggled end of data.
type strictReader struct {
	r      io.Reader
	prevCR bool // last byte seen was CR
	err    error
}

func (s *strictReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.r.Read(p)
	for i := 0; i < n; i++ {
		c := p[i]
		if c > '\r' {
			if s.prevCR {
				s.err = errBareCR
				return i, s.err
			}
			continue
		}
		switch c {
		case '\n':
			if !s.prevCR {
				s.err = errBareLF
				return i, s.err
			}
			s.prevCR = false
		case '\r':
			if s.prevCR {
				s.err = errBareCR
				return i, s.err
			}
			s.prevCR = true
		case 0:
			s.err = errNUL
			return i, s.err
		default:
			if s.prevCR {
				s.err = errBareCR
				return i, s.err
			}
		}
	}
	if err == io.EOF && s.prevCR {
		s.err = errBareCR
		return n, s.err
	}
	return n, err
}
