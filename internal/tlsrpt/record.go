package tlsrpt

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Record is a parsed _smtp._tls TXT record (RFC 8460 §3).
type Record struct {
	RUA []string // report URIs, mailto: or https:, in the record's order
}

// ErrNoRecord: the domain publishes no usable TLS-RPT record, so it gets
// no report.
var ErrNoRecord = errors.New("no TLS-RPT record")

// Select picks the record from a name's TXT strings (§3): strings that do
// not start with "v=TLSRPTv1" are ignored, and anything but exactly one
// record left means the domain does not take reports.
func Select(txts []string) (*Record, error) {
	var found []string
	for _, t := range txts {
		if isTLSRPT(t) {
			found = append(found, t)
		}
	}
	switch len(found) {
	case 0:
		return nil, ErrNoRecord
	case 1:
		return ParseRecord(found[0])
	}
	return nil, fmt.Errorf("%w: %d TLS-RPT records (§3: exactly one)", ErrNoRecord, len(found))
}

func isTLSRPT(txt string) bool {
	v, _, _ := strings.Cut(txt, ";")
	k, val, ok := strings.Cut(v, "=")
	return ok && strings.TrimSpace(k) == "v" && strings.TrimSpace(val) == "TLSRPTv1"
}

// ParseRecord parses one record (§3):
//
//	tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//	tlsrpt-version = %s"v=TLSRPTv1"
//	tlsrpt-rua = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//
// Extension fields (ext-name=ext-value) are allowed and ignored; rua is
// required; only mailto: and https: URIs are kept (§3: others are not
// defined), and commas and semicolons inside a URI must be %-encoded.
func ParseRecord(txt string) (*Record, error) {
	fields := strings.Split(txt, ";")
	if len(fields) < 2 || strings.TrimSpace(fields[0]) != "v=TLSRPTv1" {
		return nil, fmt.Errorf("%w: does not start with v=TLSRPTv1", ErrNoRecord)
	}
	var rec *Record
	for i, f := range fields[1:] {
		f = strings.Trim(f, " \t")
		if f == "" {
			if i == len(fields)-2 {
				break // a trailing delimiter
			}
			return nil, fmt.Errorf("%w: empty field", ErrNoRecord)
		}
		k, v, ok := strings.Cut(f, "=")
		if !ok || !validName(k) {
			return nil, fmt.Errorf("%w: malformed field %q", ErrNoRecord, f)
		}
		if k != "rua" {
			continue // extension, §3
		}
		if rec != nil {
			return nil, fmt.Errorf("%w: rua given twice", ErrNoRecord)
		}
		rec = &Record{}
		for _, u := range strings.Split(v, ",") {
			u = strings.Trim(u, " \t")
			pu, err := url.Parse(u)
			if err != nil || u == "" {
				return nil, fmt.Errorf("%w: bad rua URI %q", ErrNoRecord, u)
			}
			switch strings.ToLower(pu.Scheme) {
			case "mailto":
				if !strings.Contains(pu.Opaque, "@") {
					return nil, fmt.Errorf("%w: bad mailto URI %q", ErrNoRecord, u)
				}
			case "https":
				if pu.Host == "" {
					return nil, fmt.Errorf("%w: bad https URI %q", ErrNoRecord, u)
				}
			default:
				continue
			}
			rec.RUA = append(rec.RUA, u)
		}
	}
	if rec == nil || len(rec.RUA) == 0 {
		return nil, fmt.Errorf("%w: no mailto: or https: rua", ErrNoRecord)
	}
	return rec, nil
}

// validName is ext-name (§3): 1*32(ALPHA / DIGIT) *("_" / "-" / "." ...).
func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for i, c := range s {
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '-' && c != '.') {
			return false
		}
	}
	return true
}

// MailtoAddress is the address of a mailto: rua (without any ?headers).
func MailtoAddress(rua string) (string, bool) {
	u, err := url.Parse(rua)
	if err != nil || !strings.EqualFold(u.Scheme, "mailto") {
		return "", false
	}
	addr, _, _ := strings.Cut(u.Opaque, "?")
	addr, err = url.PathUnescape(addr)
	if err != nil || strings.Count(addr, "@") != 1 || strings.ContainsAny(addr, " <>\r\n,;") {
		return "", false
	}
	return addr, true
}
