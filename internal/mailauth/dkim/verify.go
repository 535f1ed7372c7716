// Package dkim verifies DKIM signatures of incoming mail (RFC 6376, with
// Ed25519 per RFC 8463 and RFC 8301's algorithm and key-size rules) with
// mox's dkim package, asking sealpost's resolver, and reports each
// signature in our own types. It knows nothing of store, queue or gateway.
package dkim

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/base64"
	"fmt"
	"log/slog"
	"strings"

	mdkim "github.com/mjl-/mox/dkim"

	"sealpost/internal/dns"
	"sealpost/internal/mailauth/moxdns"
)

// Status is a DKIM result (RFC 8601 §2.7.1).
type Status string

// Results.
const (
	None      Status = "none"
	Pass      Status = "pass"
	Fail      Status = "fail"
	Policy    Status = "policy"
	Neutral   Status = "neutral"
	Temperror Status = "temperror"
	Permerror Status = "permerror"
)

// Result is one signature's outcome.
type Result struct {
	Status    Status `json:"status"`
	Domain    string `json:"domain,omitempty"`    // d=
	Selector  string `json:"selector,omitempty"`  // s=
	Algorithm string `json:"algorithm,omitempty"` // a=
	Identity  string `json:"identity,omitempty"`  // i= (AUID)
	// B is the first eight characters of b=, for RFC 6008's header.b,
	// which tells several signatures of one domain apart.
	B      string `json:"b,omitempty"`
	KeyBit int    `json:"key_bits,omitempty"`
	Reason string `json:"reason"`
}

// Verifier verifies DKIM signatures.
type Verifier struct {
	Resolver dns.Resolver
	Log      *slog.Logger
}

// SignaturePolicy is applied to every parsed signature before its key is fetched.
// Beyond mox's checks (RFC 8301's 1024-bit minimum for RSA, expiry):
//   - rsa-sha1 is refused: RFC 8301 §3.1, "Verifiers MUST NOT consider
//     signatures using rsa-sha1 as valid" (mox still accepts it);
//   - l= is refused: a body length limit lets anyone append unsigned
//     content under a passing signature (RFC 6376 §8.2);
//   - From must be signed (RFC 6376 §5.4; mox checks it) and Subject too,
//     since a signature that leaves the subject open does not vouch for
//     what the reader sees.
func SignaturePolicy(sig *mdkim.Sig) error {
	if strings.EqualFold(sig.AlgorithmHash, "sha1") {
		return fmt.Errorf("rsa-sha1 is not acceptable (RFC 8301 §3.1)")
	}
	return mdkim.DefaultPolicy(sig)
}

// Verify checks every DKIM-Signature of msg. A message without one gives
// a single result with status none. A message whose header cannot be
// parsed gives permerror, never none: fail closed.
func (v *Verifier) Verify(ctx context.Context, msg []byte, smtputf8 bool) []Result {
	rs, err := mdkim.Verify(ctx, v.logger(), moxdns.Adapt(v.Resolver), smtputf8, SignaturePolicy, bytes.NewReader(msg), false)
	if err != nil {
		return []Result{{Status: Permerror, Reason: "message header cannot be parsed: " + err.Error()}}
	}
	return v.results(rs)
}

// results turns mox's results into ours.
func (v *Verifier) results(rs []mdkim.Result) []Result {
	if len(rs) == 0 {
		return []Result{{Status: None, Reason: "no DKIM-Signature"}}
	}
	out := make([]Result, 0, len(rs))
	for _, r := range rs {
		res := Result{Status: Status(r.Status)}
		if s := r.Sig; s != nil {
			res.Domain, res.Selector, res.Algorithm = s.Domain.ASCII, s.Selector.ASCII, s.Algorithm()
			if s.Identity != nil {
				res.Identity = s.Identity.String()
			}
			b := base64.StdEncoding.EncodeToString(s.Signature)
			if len(b) > 8 {
				b = b[:8]
			}
			res.B = b
		}
		if r.Record != nil {
			if k, ok := r.Record.PublicKey.(*rsa.PublicKey); ok {
				res.KeyBit = k.N.BitLen()
			}
		}
		switch {
		case r.Err != nil:
			res.Reason = r.Err.Error()
		case res.Status == Pass:
			res.Reason = fmt.Sprintf("signature by %s (selector %s, %s) verified", res.Domain, res.Selector, res.Algorithm)
		default:
			res.Reason = string(res.Status)
		}
		out = append(out, res)
	}
	return out
}

// PassedDomains returns the d= of every passing signature (DMARC's input).
func PassedDomains(rs []Result) []string {
	var out []string
	for _, r := range rs {
		if r.Status == Pass {
			out = append(out, r.Domain)
		}
	}
	return out
}

func (v *Verifier) logger() *slog.Logger {
	if v.Log != nil {
		return v.Log
	}
	return slog.New(slog.DiscardHandler)
}
