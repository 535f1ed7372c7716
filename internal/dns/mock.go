package dns

import (
	"context"
	"fmt"
	"net"
)

// MockResolver answers from maps, for unit tests. Keys are names as
// Normalise returns them; TLSA keys are "_25._tcp.host". A name present in
// any map exists, so a lookup of another type there is NODATA, elsewhere
// NXDOMAIN. Fail injects errors: a name listed there returns that kind
// (ErrTemporary, ErrPermanent, ...) for every type. Authentic lists the
// names whose answers carry the AD bit. The zero value answers NXDOMAIN.
type MockResolver struct {
	TXT       map[string][]string
	MX        map[string][]MX
	IP        map[string][]net.IP
	TLSA      map[string][]TLSA
	Fail      map[string]error
	Authentic map[string]bool
}

var _ Resolver = MockResolver{}

func (m MockResolver) exists(name string) bool {
	_, a := m.TXT[name]
	_, b := m.MX[name]
	_, c := m.IP[name]
	_, d := m.TLSA[name]
	return a || b || c || d
}

// result checks injected failures and absence, for one query.
func (m MockResolver) result(name, typ string, n int) (Result, error) {
	r := Result{Authentic: m.Authentic[name]}
	if kind, ok := m.Fail[name]; ok {
		return r, &Error{Kind: kind, Name: name, Type: typ, Err: fmt.Errorf("injected")}
	}
	if n == 0 {
		return r, &Error{Kind: ErrNotFound, Name: name, Type: typ, NXDom: !m.exists(name)}
	}
	return r, nil
}

// LookupTXT implements Resolver.
func (m MockResolver) LookupTXT(_ context.Context, name string) ([]string, Result, error) {
	name = Normalise(name)
	v := m.TXT[name]
	r, err := m.result(name, "TXT", len(v))
	if err != nil {
		return nil, r, err
	}
	return append([]string(nil), v...), r, nil
}

// LookupMX implements Resolver.
func (m MockResolver) LookupMX(_ context.Context, name string) ([]MX, Result, error) {
	name = Normalise(name)
	v := m.MX[name]
	r, err := m.result(name, "MX", len(v))
	if err != nil {
		return nil, r, err
	}
	return append([]MX(nil), v...), r, nil
}

// LookupIP implements Resolver.
func (m MockResolver) LookupIP(_ context.Context, host string) ([]net.IP, Result, error) {
	host = Normalise(host)
	v := m.IP[host]
	r, err := m.result(host, "A/AAAA", len(v))
	if err != nil {
		return nil, r, err
	}
	return append([]net.IP(nil), v...), r, nil
}

// LookupTLSA implements Resolver.
func (m MockResolver) LookupTLSA(_ context.Context, port int, proto, host string) ([]TLSA, Result, error) {
	name := fmt.Sprintf("_%d._%s.%s", port, proto, Normalise(host))
	v := m.TLSA[name]
	r, err := m.result(name, "TLSA", len(v))
	if err != nil {
		return nil, r, err
	}
	return append([]TLSA(nil), v...), r, nil
}
