package arc

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Sealer adds an ARC set (RFC 8617 §5.1) with the organisation's key.
type Sealer struct {
	Domain   string // d=, the org domain
	Selector string // s=
	// Key is *rsa.PrivateKey (rsa-sha256) or ed25519.PrivateKey
	// (ed25519-sha256). Use RSA for sealing towards Exchange Online,
	// Google or dkimpy: RFC 8617 §4.1.3 permits only rsa-sha256, and
	// those validators fail an Ed25519 seal.
	Key crypto.Signer
	// AuthServID names us in the ARC-Authentication-Results (RFC 8601
	// authserv-id; sealpost uses smtp.hostname).
	AuthServID string
	// Headers the AMS signs; nil means every field of defaultSigned that
	// the message has (From always).
	Headers []string
	// Now gives t=; nil means time.Now.
	Now func() time.Time
}

// defaultSigned are the fields whose change would alter what a reader sees
// or how replies go; Received and trace fields change in transit.
var defaultSigned = []string{"from", "to", "cc", "subject", "date", "message-id", "reply-to",
	"in-reply-to", "references", "mime-version", "content-type", "content-transfer-encoding",
	"dkim-signature", "list-id", "list-unsubscribe"}

// Errors of Seal.
var (
	ErrChainFailed = errors.New("arc: chain already sealed with cv=fail; no set is added (RFC 8617 §5.1)")
	ErrTooMany     = errors.New("arc: chain already at instance 50 (RFC 8617 §4.2.1)")
)

// Seal returns the ARC-Seal, ARC-Message-Signature and
// ARC-Authentication-Results fields (in that order, CRLF-terminated) to
// prepend to msg. chain is Verify's result for msg; results is the
// resinfo part of our Authentication-Results (e.g. "arc=pass; spf=pass
// smtp.mailfrom=a.example; dkim=pass header.d=a.example; dmarc=pass");
// when it carries no arc= result, "arc=<cv>" is put first (RFC 8617 §4.1.1
// makes the AAR a copy of the A-R, which reports the ARC result).
func (s *Sealer) Seal(msg []byte, chain Result, results string) (string, error) {
	fields, body, err := split(toCRLF(msg))
	return s.seal(fields, err, WholeBody(body), chain, results)
}

// SealHeader is Seal for a message given by its header section and the
// hashes of its body (see VerifyHeader).
func (s *Sealer) SealHeader(header []byte, bh BodyHashes, chain Result, results string) (string, error) {
	fields, _, err := split(toCRLF(header))
	return s.seal(fields, err, bh, chain, results)
}

func (s *Sealer) seal(fields []field, err error, body BodyHashes, chain Result, results string) (string, error) {
	if err != nil {
		return "", fmt.Errorf("arc: %w", err)
	}
	sets, n, cerr := collect(fields)
	cv := None
	switch {
	case cerr != nil:
		cv = Fail
	case n > 0 && Status(strings.ToLower(sets[n].asTags["cv"])) == Fail:
		return "", ErrChainFailed
	case n > 0 && chain.Status == Pass:
		cv = Pass
	case n > 0:
		cv = Fail
	}
	i := n + 1
	if i > maxInstance {
		return "", ErrTooMany
	}
	return s.sealAt(fields, body, sets, i, cv, results)
}

// sealAt builds the set for instance i over the given earlier sets.
func (s *Sealer) sealAt(fields []field, body BodyHashes, sets map[int]*arcSet, i int, cv Status, results string) (string, error) {
	alg, err := algorithm(s.Key)
	if err != nil {
		return "", err
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ts := strconv.FormatInt(now().Unix(), 10)

	r := strings.TrimSpace(results)
	if !hasARCResult(r) {
		r = strings.TrimSuffix("arc="+string(cv)+"; "+r, "; ")
	}
	aar := "ARC-Authentication-Results: i=" + strconv.Itoa(i) + "; " + s.AuthServID + ";\r\n\t" + r + "\r\n"

	hdrs := s.Headers
	if hdrs == nil {
		present := map[string]bool{"from": true}
		for _, f := range fields {
			present[f.Lower] = true
		}
		for _, h := range defaultSigned {
			if present[h] {
				hdrs = append(hdrs, h)
			}
		}
	}
	sum := body(true, -1)
	if sum == nil {
		return "", errors.New("arc: the body's relaxed hash was not computed")
	}
	bh := base64.StdEncoding.EncodeToString(sum)
	amsNoB := fold("ARC-Message-Signature", []string{"a=" + alg, "b=", "bh=" + bh, "c=relaxed/relaxed",
		"d=" + s.Domain, "h=" + strings.Join(hdrs, ":"), "i=" + strconv.Itoa(i), "s=" + s.Selector, "t=" + ts})
	var data strings.Builder
	used := map[string]int{}
	for _, h := range hdrs {
		h = strings.ToLower(h)
		seen := 0
		for k := len(fields) - 1; k >= 0; k-- {
			if fields[k].Lower != h {
				continue
			}
			if seen == used[h] {
				data.WriteString(relaxedHeader(fields[k].Raw))
				break
			}
			seen++
		}
		used[h]++
	}
	data.WriteString(strings.TrimSuffix(relaxedHeader(amsNoB), "\r\n"))
	sig, err := sign(s.Key, data.String())
	if err != nil {
		return "", err
	}
	ams := withB(amsNoB, sig)

	asNoB := fold("ARC-Seal", []string{"a=" + alg, "b=", "cv=" + string(cv), "d=" + s.Domain,
		"i=" + strconv.Itoa(i), "s=" + s.Selector, "t=" + ts})
	mine := &arcSet{aar: &field{Raw: aar}, ams: &field{Raw: ams}}
	var input string
	if cv == Fail {
		// A failed chain may not even be parsable into sets; the seal
		// then covers only its own set, which is all a validator looks at
		// once it sees cv=fail (RFC 8617 §5.2 step 2).
		input = sealInput(map[int]*arcSet{1: mine}, 1, asNoB)
	} else {
		all := map[int]*arcSet{i: mine}
		for k := 1; k < i; k++ {
			all[k] = sets[k]
		}
		input = sealInput(all, i, asNoB)
	}
	sig, err = sign(s.Key, input)
	if err != nil {
		return "", err
	}
	return withB(asNoB, sig) + ams + aar, nil
}

// hasARCResult reports whether an authres payload already has an arc= method.
func hasARCResult(r string) bool {
	for _, p := range strings.Split(r, ";") {
		if m, _, ok := strings.Cut(strings.TrimSpace(p), "="); ok && strings.EqualFold(strings.TrimSpace(m), "arc") {
			return true
		}
	}
	return false
}

func algorithm(k crypto.Signer) (string, error) {
	switch k.(type) {
	case *rsa.PrivateKey:
		return "rsa-sha256", nil
	case ed25519.PrivateKey:
		return "ed25519-sha256", nil
	}
	return "", fmt.Errorf("arc: unsupported key type %T", k)
}

func sign(k crypto.Signer, data string) ([]byte, error) {
	h := sha256.Sum256([]byte(data))
	if _, ok := k.(ed25519.PrivateKey); ok {
		// RFC 8463 §3: Ed25519 over the SHA-256 hash, pure mode.
		return k.Sign(rand.Reader, h[:], crypto.Hash(0))
	}
	return k.Sign(rand.Reader, h[:], crypto.SHA256)
}

// fold writes "Name: t1; t2; ..." folded before a tag when a line would
// pass 76 columns; folding only where relaxed canonicalisation already has
// a space keeps signer and verifier inputs equal.
func fold(name string, tags []string) string {
	var b strings.Builder
	b.WriteString(name + ":")
	col := len(name) + 1
	for k, t := range tags {
		if k < len(tags)-1 {
			t += ";"
		}
		// Never fold before i=: dkimpy finds a set's fields by the text
		// " i=N;" in the raw value, so i= must follow a space, not the tab
		// of a continuation line (a longer line is still far below 998).
		if col+1+len(t) > 76 && k > 0 && !strings.HasPrefix(t, "i=") {
			b.WriteString("\r\n\t")
			col = 8
		} else {
			b.WriteByte(' ')
			col++
		}
		b.WriteString(t)
		col += len(t)
	}
	b.WriteString("\r\n")
	return b.String()
}

// withB fills the empty b= of a folded field with sig. The value is not
// folded: whitespace inside b= is ignored when decoding (RFC 6376 §3.5)
// but survives relaxed canonicalisation as a space, and the next ARC-Seal
// covers this field, so an unfolded value (at most ~700 characters for
// RSA-4096, under RFC 5322's 998) is the layout every sealer agrees on;
// it is also the ValiMail signing suite's.
func withB(field string, sig []byte) string {
	return strings.Replace(field, " b=;", " b="+base64.StdEncoding.EncodeToString(sig)+";", 1)
}
