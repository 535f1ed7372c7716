// Package arc implements the Authenticated Received Chain (RFC 8617):
// verifying the chain a message arrives with and sealing it with the
// organisation's key so the mail host behind sealpost can trust the
// authentication results we computed. It knows nothing of store, queue or
// gateway; the pipeline calls Verify and Seal.
package arc

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/mjl-/mox/dkim"

	"sealpost/internal/dns"
)

// Status is a chain validation status (RFC 8617 §4.4).
type Status string

// The cv values.
const (
	None Status = "none"
	Pass Status = "pass"
	Fail Status = "fail"
)

// maxInstance is RFC 8617 §4.2.1: instances run from 1 to 50.
const maxInstance = 50

// Result is the outcome of Verify.
type Result struct {
	Status Status
	// Instance is the highest instance found (0 without a chain).
	Instance int
	// OldestPass is the lowest instance whose AMS still validates
	// (RFC 8617 §5.2 step 5); 0 when not computed or no chain.
	OldestPass int
	// Reason says why the chain failed, for Authentication-Results comments
	// and the inbound verdict; empty on pass/none.
	Reason string
	// Sets are the parsed sets in instance order (index 0 is i=1), for the
	// sealer and for reporting which domains handled the message.
	Sets []Set
}

// Set is one ARC set's essentials.
type Set struct {
	Instance int
	Domain   string // d= of the ARC-Seal
	CV       Status
	AAR      string // ARC-Authentication-Results value without "i=N;"
}

type arcSet struct {
	aar, ams, as *field
	amsTags      map[string]string
	asTags       map[string]string
}

// Verify validates the ARC chain of msg (RFC 8617 §5.2). Line endings may
// be LF or CRLF. Any DNS error, malformed field or bad signature is a fail,
// never a pass; a message without ARC fields is none.
func Verify(ctx context.Context, r dns.Resolver, msg []byte) Result {
	msg = toCRLF(msg)
	fields, body, err := split(msg)
	return verify(ctx, r, msg, fields, err, WholeBody(body))
}

// BodyHashes gives the SHA-256 of the body canonicalised (relaxed or
// simple, RFC 6376 §3.4) and limited to l bytes when l >= 0; nil if it
// was not computed. A message streamed in has them computed on the fly
// (dkim.BodyHasher), so the body is never held.
type BodyHashes func(relaxed bool, l int64) []byte

// WholeBody computes the body hashes of a body in memory.
func WholeBody(body []byte) BodyHashes {
	return func(relaxed bool, l int64) []byte { return bodyHash(body, relaxed, l) }
}

// VerifyHeader is Verify for a message whose header section (with or
// without the blank line) is given and whose body is known by its hashes.
func VerifyHeader(ctx context.Context, r dns.Resolver, header []byte, bh BodyHashes) Result {
	header = toCRLF(header)
	fields, _, err := split(header)
	return verify(ctx, r, header, fields, err, bh)
}

func verify(ctx context.Context, r dns.Resolver, msg []byte, fields []field, err error, body BodyHashes) Result {
	if err != nil {
		// No parsable header: if it contains ARC fields at all, fail.
		if strings.Contains(strings.ToLower(string(msg)), "arc-seal") {
			return Result{Status: Fail, Reason: err.Error()}
		}
		return Result{Status: None}
	}
	sets, n, err := collect(fields)
	if n == 0 && err == nil {
		return Result{Status: None}
	}
	res := Result{Status: Fail, Instance: n}
	if err != nil {
		res.Reason = err.Error()
		return res
	}
	for i := 1; i <= n; i++ {
		s := sets[i]
		res.Sets = append(res.Sets, Set{Instance: i, Domain: s.asTags["d"], CV: Status(strings.ToLower(s.asTags["cv"])), AAR: s.aar.Value})
	}
	// Step 2: the chain already failed upstream.
	if Status(strings.ToLower(sets[n].asTags["cv"])) == Fail {
		res.Reason = fmt.Sprintf("ARC-Seal i=%d says cv=fail", n)
		return res
	}
	// Step 4: the most recent AMS must validate.
	if err := verifyAMS(ctx, r, fields, body, sets[n]); err != nil {
		res.Reason = fmt.Sprintf("ARC-Message-Signature i=%d: %v", n, err)
		return res
	}
	// Step 5: oldest pass, informative only.
	res.OldestPass = n
	for i := n - 1; i >= 1; i-- {
		if verifyAMS(ctx, r, fields, body, sets[i]) != nil {
			break
		}
		res.OldestPass = i
	}
	// Step 6: every seal, newest to oldest.
	for i := n; i >= 1; i-- {
		if err := verifyAS(ctx, r, sets, i); err != nil {
			res.Reason = fmt.Sprintf("ARC-Seal i=%d: %v", i, err)
			return res
		}
	}
	res.Status = Pass
	res.Reason = ""
	return res
}

// instanceOf reads the i= tag. For AAR it is the first tag and the rest of
// the value is an authres payload, so it is parsed on its own.
func instanceOf(v string) (int, error) {
	v = strings.TrimLeft(v, " \t\r\n")
	semi := strings.IndexByte(v, ';')
	if semi < 0 {
		return 0, errors.New("no i= tag")
	}
	t := strings.Trim(v[:semi], " \t\r\n")
	if !strings.HasPrefix(t, "i") {
		return 0, errors.New("first tag is not i=")
	}
	t = strings.TrimLeft(t[1:], " \t\r\n")
	if !strings.HasPrefix(t, "=") {
		return 0, errors.New("first tag is not i=")
	}
	return parseInstance(strings.Trim(t[1:], " \t\r\n"))
}

func parseInstance(s string) (int, error) {
	if s == "" || len(s) > 2 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("bad instance %q", s)
	}
	i, _ := strconv.Atoi(s)
	if i < 1 || i > maxInstance {
		return 0, fmt.Errorf("instance %d outside 1..%d", i, maxInstance)
	}
	return i, nil
}

// collect groups the ARC fields into sets and checks structure (RFC 8617
// §5.2 step 3): exactly one of each field per instance, no gaps, cv=none
// only at i=1 and pass above it.
func collect(fields []field) (map[int]*arcSet, int, error) {
	sets := map[int]*arcSet{}
	get := func(i int) *arcSet {
		if sets[i] == nil {
			sets[i] = &arcSet{}
		}
		return sets[i]
	}
	n := 0
	for k := range fields {
		f := &fields[k]
		var i int
		var err error
		switch f.Lower {
		case "arc-authentication-results":
			i, err = instanceOf(f.Value)
			if err != nil {
				return nil, 1, fmt.Errorf("ARC-Authentication-Results: %v", err)
			}
			s := get(i)
			if s.aar != nil {
				return nil, 1, fmt.Errorf("two ARC-Authentication-Results with i=%d", i)
			}
			s.aar = f
		case "arc-message-signature", "arc-seal":
			tags, _, perr := parseTags(f.Value)
			if perr != nil {
				return nil, 1, fmt.Errorf("%s: %v", f.Name, perr)
			}
			i, err = parseInstance(tags["i"])
			if err != nil {
				return nil, 1, fmt.Errorf("%s: %v", f.Name, err)
			}
			s := get(i)
			if f.Lower == "arc-seal" {
				if s.as != nil {
					return nil, 1, fmt.Errorf("two ARC-Seal with i=%d", i)
				}
				s.as, s.asTags = f, tags
			} else {
				if s.ams != nil {
					return nil, 1, fmt.Errorf("two ARC-Message-Signature with i=%d", i)
				}
				s.ams, s.amsTags = f, tags
			}
		default:
			continue
		}
		n = max(n, i)
	}
	if n == 0 {
		return nil, 0, nil
	}
	for i := 1; i <= n; i++ {
		s := sets[i]
		if s == nil || s.aar == nil || s.ams == nil || s.as == nil {
			return nil, n, fmt.Errorf("ARC set i=%d incomplete or missing", i)
		}
		cv := strings.ToLower(s.asTags["cv"])
		switch {
		case i == 1 && cv != string(None):
			return nil, n, fmt.Errorf("ARC-Seal i=1 has cv=%q, want none", cv)
		case i > 1 && cv != string(Pass) && !(i == n && cv == string(Fail)):
			return nil, n, fmt.Errorf("ARC-Seal i=%d has cv=%q", i, cv)
		}
	}
	return sets, n, nil
}

// lookupKey fetches and parses the DKIM key record (RFC 6376 §3.6.2);
// RFC 8617 §4.1 reuses it for ARC.
func lookupKey(ctx context.Context, r dns.Resolver, sel, domain string) (any, error) {
	if sel == "" || domain == "" {
		return nil, errors.New("s= or d= missing")
	}
	for _, l := range strings.Split(sel+"."+domain, ".") {
		if l == "" || len(l) > 63 {
			return nil, fmt.Errorf("bad key name %s._domainkey.%s", sel, domain)
		}
	}
	name := sel + "._domainkey." + domain
	txts, _, err := r.LookupTXT(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", name, err)
	}
	if len(txts) != 1 {
		return nil, fmt.Errorf("key %s: %d records, want 1", name, len(txts))
	}
	rec, _, err := dkim.ParseRecord(txts[0])
	if err != nil {
		return nil, fmt.Errorf("key %s: %v", name, err)
	}
	if rec.PublicKey == nil {
		return nil, fmt.Errorf("key %s revoked", name)
	}
	return rec.PublicKey, nil
}

// checkSig verifies sig over sha256(data) with the key named by tags.
func checkSig(ctx context.Context, r dns.Resolver, tags map[string]string, data string) error {
	sig, err := base64.StdEncoding.DecodeString(b64clean(tags["b"]))
	if err != nil || len(sig) == 0 {
		return errors.New("b= is not valid base64")
	}
	pub, err := lookupKey(ctx, r, tags["s"], tags["d"])
	if err != nil {
		return err
	}
	h := sha256.Sum256([]byte(data))
	switch strings.ToLower(tags["a"]) {
	case "rsa-sha256":
		k, ok := pub.(*rsa.PublicKey)
		if !ok {
			return errors.New("a=rsa-sha256 with a non-RSA key")
		}
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig); err != nil {
			return errors.New("signature does not verify")
		}
	case "ed25519-sha256":
		k, ok := pub.(ed25519.PublicKey)
		if !ok {
			return errors.New("a=ed25519-sha256 with a non-Ed25519 key")
		}
		// RFC 8463 §3: Ed25519 signs the SHA-256 hash.
		if !ed25519.Verify(k, h[:], sig) {
			return errors.New("signature does not verify")
		}
	default:
		// RFC 8617 §4.1.3 allows only rsa-sha256; ed25519-sha256 (RFC
		// 8463) is accepted too because dkimpy and others seal with it.
		return fmt.Errorf("unsupported a=%q", tags["a"])
	}
	return nil
}

// required checks that the tags exist and are non-empty.
func required(tags map[string]string, names ...string) error {
	for _, n := range names {
		if tags[n] == "" {
			return fmt.Errorf("%s= missing", n)
		}
	}
	return nil
}

// verifyAMS checks an ARC-Message-Signature like a DKIM signature (RFC 8617
// §4.1.2), with the differences RFC 8617 makes: no v=, i= is the instance,
// and ARC-Seal must not be signed.
func verifyAMS(ctx context.Context, r dns.Resolver, fields []field, body BodyHashes, s *arcSet) error {
	t := s.amsTags
	if err := required(t, "a", "b", "bh", "d", "s"); err != nil {
		return err
	}
	if _, ok := t["h"]; !ok {
		// An empty h= is allowed (the suite's ams_fields_h_empty); only
		// the AMS itself is then signed.
		return errors.New("h= missing")
	}
	// Without c= the suite (ams_fields_c_na) and dkimpy's ARC code use
	// relaxed/relaxed, not DKIM's simple/simple; a wrong guess can only
	// fail, never pass. A present but empty c= is malformed.
	hc, bc := "relaxed", "relaxed"
	if c, ok := t["c"]; ok {
		c = strings.ToLower(c)
		parts := strings.SplitN(c, "/", 2)
		hc = parts[0]
		if len(parts) == 2 {
			bc = parts[1]
		}
	}
	for _, c := range []string{hc, bc} {
		if c != "simple" && c != "relaxed" {
			return fmt.Errorf("unknown canonicalisation %q", t["c"])
		}
	}
	l := int64(-1)
	if v, ok := t["l"]; ok {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("bad l=%q", v)
		}
		l = n
	}
	bh, err := base64.StdEncoding.DecodeString(b64clean(t["bh"]))
	if err != nil {
		return errors.New("bh= is not valid base64")
	}
	if got := body(bc == "relaxed", l); got == nil || string(got) != string(bh) {
		return errors.New("body hash does not match")
	}
	var data strings.Builder
	used := map[string]int{}
	for _, h := range strings.Split(t["h"], ":") {
		h = strings.ToLower(strings.Trim(h, " \t\r\n"))
		if h == "" {
			// "from::to": an empty name selects no field (RFC 6376
			// §5.4 "nonexistent header field"), so it adds nothing.
			continue
		}
		if h == "arc-seal" {
			return errors.New("h= lists ARC-Seal (RFC 8617 §4.1.2)")
		}
		// RFC 6376 §5.4.2: instances are used from the bottom up; a name
		// listed more often than present contributes nothing.
		seen := 0
		for k := len(fields) - 1; k >= 0; k-- {
			if fields[k].Lower != h {
				continue
			}
			if seen == used[h] {
				data.WriteString(canonHeader(fields[k].Raw, hc == "relaxed"))
				break
			}
			seen++
		}
		used[h]++
	}
	self := canonHeader(ensureCRLF(stripB(s.ams.Raw)), hc == "relaxed")
	data.WriteString(strings.TrimSuffix(self, "\r\n"))
	return checkSig(ctx, r, t, data.String())
}

func ensureCRLF(s string) string {
	if strings.HasSuffix(s, "\r\n") {
		return s
	}
	return s + "\r\n"
}

// verifyAS checks the ARC-Seal of instance i (RFC 8617 §5.1.1): relaxed
// header canonicalisation over every set 1..i in order AAR, AMS, AS, the
// seal being checked with b= empty and no trailing CRLF. AS carries no h=.
func verifyAS(ctx context.Context, r dns.Resolver, sets map[int]*arcSet, i int) error {
	t := sets[i].asTags
	if _, ok := t["h"]; ok {
		return errors.New("h= is not allowed in ARC-Seal")
	}
	if err := required(t, "a", "b", "cv", "d", "s"); err != nil {
		return err
	}
	return checkSig(ctx, r, t, sealInput(sets, i, ""))
}

// sealInput builds the ARC-Seal signing input for instance i. When self is
// non-empty it is used as the (b=-less) AS of instance i, for sealing.
func sealInput(sets map[int]*arcSet, i int, self string) string {
	var b strings.Builder
	for k := 1; k <= i; k++ {
		s := sets[k]
		if s == nil {
			// Only a test builds a gapped chain on purpose; collect
			// rejects gaps before any seal is checked.
			continue
		}
		b.WriteString(relaxedHeader(s.aar.Raw))
		b.WriteString(relaxedHeader(s.ams.Raw))
		if k < i {
			b.WriteString(relaxedHeader(s.as.Raw))
		}
	}
	if self == "" {
		self = stripB(sets[i].as.Raw)
	}
	b.WriteString(strings.TrimSuffix(relaxedHeader(ensureCRLF(self)), "\r\n"))
	return b.String()
}
