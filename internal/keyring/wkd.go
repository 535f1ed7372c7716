package keyring

import (
	"context"
	"crypto/sha1"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"sealpost/internal/netguard"
)

// Web Key Directory (draft-koch-openpgp-webkey-service-19, "WKD"): a
// domain publishes its users' OpenPGP keys over HTTPS at a path derived from
// the address, so the domain's WebPKI certificate vouches for the key.
//
// §3.1: the local part is lower-cased, hashed with SHA-1 and encoded in
// z-base-32; the advanced method asks
//
//	https://openpgpkey.<domain>/.well-known/openpgpkey/<domain>/hu/<hash>?l=<local>
//
// and, only when that fails, the direct method asks
//
//	https://<domain>/.well-known/openpgpkey/hu/<hash>?l=<local>
//
// The answer must be binary (not armoured) and the key must carry a user
// ID with exactly the address asked for (§3.1: "the user ID ... MUST
// match"); anything else is refused rather than trusted.

// zbase32 is the alphabet of z-base-32 (RFC 6189 §5.1.6).
const zbase32 = "ybndrfg8ejkmcpqxot1uwisza345h769"

// ZBase32 encodes b in z-base-32 without padding.
func ZBase32(b []byte) string {
	var sb strings.Builder
	var acc uint32
	bits := 0
	for _, c := range b {
		acc = acc<<8 | uint32(c)
		bits += 8
		for bits >= 5 {
			bits -= 5
			sb.WriteByte(zbase32[(acc>>uint(bits))&31])
		}
	}
	if bits > 0 {
		sb.WriteByte(zbase32[(acc<<uint(5-bits))&31])
	}
	return sb.String()
}

// WKDHash is the hashed local part of §3.1.
func WKDHash(local string) string {
	sum := sha1.Sum([]byte(strings.ToLower(local)))
	return ZBase32(sum[:])
}

// WKDURLs returns the advanced and the direct URL for address.
func WKDURLs(address string) (advanced, direct string, err error) {
	i := strings.LastIndexByte(address, '@')
	if i <= 0 || i == len(address)-1 {
		return "", "", fmt.Errorf("%q is not an address", address)
	}
	local, domain := address[:i], strings.ToLower(address[i+1:])
	h := WKDHash(local)
	q := "?l=" + url.QueryEscape(local)
	return "https://openpgpkey." + domain + "/.well-known/openpgpkey/" + domain + "/hu/" + h + q,
		"https://" + domain + "/.well-known/openpgpkey/hu/" + h + q, nil
}

// WKD fetches keys from Web Key Directories.
type WKD struct {
	// Client does the HTTPS requests; tests give one whose transport dials
	// a loopback server and trusts its certificate. Nil: a client with the
	// system's roots.
	Client  *http.Client
	Timeout time.Duration // per request (default 10s)
	MaxSize int64         // largest answer read (default 256 KiB)
}

// NewWKDClient is the HTTPS client of production WKD lookups: the system's
// roots, no proxy (a proxy would both see whom we mail and defeat the
// guard), and a dialer that resolves with lookup (outbound.resolver; nil:
// the system's) and connects only to public addresses, so a recipient
// domain pointed at 127.0.0.1 or 10.0.0.0/8 cannot make the gateway fetch
// from its own network. allow admits refused addresses (tests: loopback).
func NewWKDClient(lookup func(ctx context.Context, host string) ([]net.IP, error), timeout time.Duration, allow func(netip.Addr) bool) *http.Client {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	return &http.Client{Transport: &http.Transport{
		Proxy:               nil,
		DialContext:         netguard.Dialer{Lookup: lookup, Timeout: timeout, Allow: allow}.DialContext,
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: timeout,
		MaxIdleConnsPerHost: 2,
	}}
}

// ErrNoKey: the directory has no key for the address (404 from both
// methods, or a key with no user ID for it).
var ErrNoKey = errors.New("no key published")

// WKDAttempt is one request of a lookup, for the ladder's explanation.
type WKDAttempt struct {
	Method string `json:"method"` // "advanced" or "direct"
	URL    string `json:"url"`
	Result string `json:"result"` // "found", "none" or "refused"/"error: …"
}

// Fetch asks the advanced method, then the direct one, and returns the
// keys that have a user ID for exactly address.
func (w *WKD) Fetch(ctx context.Context, address string) ([]Key, []WKDAttempt, error) {
	adv, dir, err := WKDURLs(address)
	if err != nil {
		return nil, nil, err
	}
	var tries []WKDAttempt
	var lastErr error = ErrNoKey
	for _, m := range []struct{ name, url string }{{"advanced", adv}, {"direct", dir}} {
		keys, err := w.get(ctx, m.url, address)
		a := WKDAttempt{Method: m.name, URL: m.url, Result: "found"}
		if err != nil {
			a.Result = err.Error()
			if errors.Is(err, ErrNoKey) {
				a.Result = "none"
			}
			tries = append(tries, a)
			if !errors.Is(err, ErrNoKey) || !errors.Is(lastErr, ErrNoKey) {
				lastErr = err
			}
			continue
		}
		tries = append(tries, a)
		return keys, tries, nil
	}
	return nil, tries, lastErr
}

func (w *WKD) get(ctx context.Context, u, address string) ([]Key, error) {
	timeout := w.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	c := w.Client
	if c == nil {
		c = &http.Client{}
	}
	// Redirects are not followed: a key must come from the domain asked
	// (a redirect to another host would let that host vouch for it).
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := cc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the attempt already
		}
		var be *netguard.BlockedError
		if errors.As(err, &be) {
			// The SSRF guard refused the host: it is no server of ours to ask.
			return nil, fmt.Errorf("unreachable: %v", be)
		}
		return nil, fmt.Errorf("error: %v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return nil, ErrNoKey
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("refused: HTTP %d", resp.StatusCode)
	}
	max := w.MaxSize
	if max <= 0 {
		max = 256 << 10
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, fmt.Errorf("error: reading the answer: %v", err)
	}
	if int64(len(body)) > max {
		return nil, fmt.Errorf("refused: answer larger than %d bytes", max)
	}
	keys, err := ParseBinaryPGP(body)
	if err != nil {
		return nil, fmt.Errorf("refused: %v", err)
	}
	var out []Key
	for _, k := range keys {
		for _, a := range k.Addresses {
			if a == strings.ToLower(address) {
				k.Addresses = []string{a}
				out = append(out, k)
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("refused: no user ID is exactly %s", address)
	}
	return out, nil
}
