package mime

import (
	"fmt"
	"io"
	stdmime "mime"
	"strings"

	"golang.org/x/text/encoding/htmlindex"
)

// CharsetReader decodes text in charset (a MIME or HTML charset label, as
// the WHATWG Encoding Standard names them) to UTF-8.
func CharsetReader(charset string, r io.Reader) (io.Reader, error) {
	enc, err := htmlindex.Get(charset)
	if err != nil {
		return nil, fmt.Errorf("unknown charset %q", charset)
	}
	return enc.NewDecoder().Reader(r), nil
}

// wordDecoder is the one RFC 2047 decoder: every charset CharsetReader
// knows. It holds no state (decoding allocates per call), so sharing it
// is safe.
var wordDecoder = stdmime.WordDecoder{CharsetReader: CharsetReader}

// WordDecoder returns the RFC 2047 decoder, for net/mail's AddressParser.
func WordDecoder() *stdmime.WordDecoder { return &wordDecoder }

// DecodeHeader decodes the encoded words of a header value as a mail
// client shows them; a value that does not decode is returned as it is
// (never dropped: what cannot be decoded is still read).
func DecodeHeader(v string) string {
	if !strings.Contains(v, "=?") {
		return v
	}
	if d, err := wordDecoder.DecodeHeader(v); err == nil {
		return d
	}
	return v
}
