// Package dns is sealpost's one view of the DNS: a small Resolver interface
// that every protocol package (SPF, DKIM, DMARC, ARC, DANE, delivery) asks,
// and a MockResolver for their unit tests. It knows nothing of store, queue
// or gateway. mox's dns package is the model; it is kept smaller here so
// that a fake is cheap to write.
package dns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
)

// Result carries what every lookup shares besides its records: whether the
// answer was DNSSEC-validated by the resolver (the AD bit, RFC 4035 §3.2.3).
// DANE (RFC 7672 §2.2) and MTA-STS decisions need this bit; SPF/DKIM do not.
type Result struct {
	Authentic bool
}

// MX is one mail exchanger (RFC 5321 §5.1).
type MX struct {
	Host string // without trailing dot
	Pref uint16
}

// TLSA is one DANE record (RFC 6698 §2.1).
type TLSA struct {
	Usage        uint8
	Selector     uint8
	MatchingType uint8
	CertAssoc    []byte
}

// Resolver is what protocol packages may ask of the DNS. Names are fully
// qualified without the trailing dot. Errors are classified: use
// IsNotFound (NXDOMAIN or no records of the type: a definite "no") and
// IsTemporary (SERVFAIL, timeout: try later) — the two must never be
// confused, because SPF, DMARC and DANE fail open or closed on the difference.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, Result, error)
	LookupMX(ctx context.Context, name string) ([]MX, Result, error)
	LookupIP(ctx context.Context, host string) ([]net.IP, Result, error)
	LookupTLSA(ctx context.Context, port int, proto, host string) ([]TLSA, Result, error)
}

// Sentinel kinds; errors returned by resolvers wrap one of them.
var (
	// ErrNotFound: NXDOMAIN, or the name exists without records of the type.
	ErrNotFound = errors.New("dns: no such record")
	// ErrTemporary: the answer could not be had now (SERVFAIL, timeout).
	ErrTemporary = errors.New("dns: temporary failure")
	// ErrPermanent: a malformed name or answer (e.g. REFUSED, FORMERR).
	ErrPermanent = errors.New("dns: permanent failure")
)

// Error is a classified lookup error naming the query.
type Error struct {
	Kind  error // one of ErrNotFound, ErrTemporary, ErrPermanent
	Name  string
	Type  string
	NXDom bool // NXDOMAIN rather than NODATA; DMARC's np= (RFC 9989) needs the difference
	Err   error
}

func (e *Error) Error() string {
	s := fmt.Sprintf("%s %s: %v", e.Type, e.Name, e.Kind)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns both the kind and the cause, so errors.Is works on either.
func (e *Error) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Kind, e.Err}
	}
	return []error{e.Kind}
}

// IsNotFound reports a definite absence of records (NXDOMAIN or NODATA).
func IsNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// IsNXDomain reports that the name itself does not exist.
func IsNXDomain(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.NXDom
}

// IsTemporary reports a failure that may succeed on retry.
func IsTemporary(err error) bool { return errors.Is(err, ErrTemporary) }

// Normalise lower-cases a name and strips the trailing dot, so that maps
// and comparisons agree (DNS names are case-insensitive, RFC 4343).
func Normalise(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}
