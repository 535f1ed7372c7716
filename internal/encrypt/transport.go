// Package encrypt carries out the policy actions encrypt, encrypt-pgp and
// encrypt-smime: for each recipient it finds a usable key down the
// keyring's discovery ladder, encrypts the message to it and hands the
// encrypted copy to the outbound transport; a recipient with no usable key
// gets the message through the portal instead, so nobody receives mail
// they cannot read and nothing leaves unprotected. Every recipient's
// outcome is audited: the key's fingerprint, its source and trust, and the
// algorithms used.
package encrypt

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/keyring"
	"sealpost/internal/pgp"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// Actions (and queue routes) this package serves.
const (
	Any   = "encrypt"       // OpenPGP or S/MIME, by Transport.Prefer
	PGP   = "encrypt-pgp"   // OpenPGP only
	SMIME = "encrypt-smime" // S/MIME only
)

// Transport is the queue transport of one of the actions above.
type Transport struct {
	Action  string // Any, PGP or SMIME
	Keyring *keyring.Keyring
	// Next delivers the encrypted copy (the outbound SMTP transport);
	// Portal takes recipients without a usable key.
	Next, Portal queue.Transport
	Prefer       string // "pgp" or "smime", for Any
	// SMIME takes the recipients whose chosen key is an X.509 certificate
	// (action Any): the S/MIME transport, which validates the certificate
	// and audits itself. Nil: S/MIME is not available.
	SMIME queue.Transport
	// Signer returns the key that signs mail from headerFrom (nil, nil:
	// unsigned).
	Signer         func(ctx context.Context, headerFrom string) (*crypto.Key, error)
	ProtectHeaders bool
	// TempDir holds encrypted copies while they are delivered ("": the
	// system's); only ciphertext is written there.
	TempDir string
	// Preamble, when set, gives the plaintext preamble of rcpt's copy
	// (ok false: none), having sealed the message into the portal for
	// them. An error fails the recipient for a retry: a copy that should
	// carry a way into the portal never leaves without one.
	Preamble func(ctx context.Context, d *queue.Delivery, rcpt string) (text string, ok bool, err error)
	Audit    func(ctx context.Context, e *store.AuditEvent) error
	Log      *slog.Logger
	Now      func() time.Time
}

// Choice is the key (or the lack of one) for one recipient.
type Choice struct {
	Kind string        // keyring.KindPGP or keyring.KindX509; "" none
	Keys []keyring.Key // of Kind, all from one rung of the ladder
	Why  string        // when Kind is "": why the portal
}

// Choose picks the keys for address under action: the first rung of the
// ladder with usable keys of a kind this gateway can encrypt to, the
// operator's preference deciding between kinds for Any.
func Choose(ctx context.Context, kr *keyring.Keyring, action, prefer string, smime bool, address string) (*Choice, error) {
	kinds := []string{keyring.KindPGP}
	switch action {
	case SMIME:
		kinds = []string{keyring.KindX509}
	case Any:
		kinds = []string{keyring.KindPGP, keyring.KindX509}
		if prefer == "smime" {
			kinds = []string{keyring.KindX509, keyring.KindPGP}
		}
	}
	if !smime {
		var k []string
		for _, kind := range kinds {
			if kind != keyring.KindX509 {
				k = append(k, kind)
			}
		}
		if len(k) == 0 {
			return &Choice{Why: "S/MIME encryption is not available on this gateway"}, nil
		}
		kinds = k
	}
	kind := ""
	if len(kinds) == 1 {
		kind = kinds[0]
	}
	ans, err := kr.Lookup(ctx, address, keyring.Options{Kind: kind})
	if err != nil {
		return nil, err
	}
	if len(ans.Keys) == 0 {
		return &Choice{Why: ans.Why}, nil
	}
	for _, want := range kinds {
		var keys []keyring.Key
		for _, k := range ans.Keys {
			if k.Kind == want {
				keys = append(keys, k)
			}
		}
		if len(keys) > 0 {
			return &Choice{Kind: want, Keys: keys}, nil
		}
	}
	return &Choice{Why: "no usable key of a kind this gateway encrypts to for " + address}, nil
}

// Describe is the audit detail of keys: fingerprint, kind, source, trust
// and algorithm of each.
func Describe(keys []keyring.Key) string {
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("key=%s kind=%s source=%s trust=%s alg=%s", k.Fingerprint, k.Kind, k.Source, k.Trust, k.Algorithm))
	}
	return strings.Join(parts, "; ")
}

// Deliver encrypts for each recipient on its own (each gets a copy only
// their keys open) and hands the copy to Next; recipients without a usable
// key go to Portal in one delivery.
func (t *Transport) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	var toPortal, toSMIME []int
	var why []string
	for i, rcpt := range d.Rcpts {
		ch, err := Choose(ctx, t.Keyring, t.Action, t.Prefer, t.SMIME != nil, rcpt)
		if err != nil {
			att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 the key store cannot be read: " + err.Error()}
			continue
		}
		if ch.Kind == "" {
			toPortal = append(toPortal, i)
			why = append(why, ch.Why)
			continue
		}
		if ch.Kind == keyring.KindX509 {
			toSMIME = append(toSMIME, i)
			continue
		}
		a := t.deliverOne(ctx, d, rcpt, ch)
		att.Rcpts[i] = a.Rcpts[0]
		if a.Relay != "" {
			att.Relay, att.TLS, att.TLSInfo = a.Relay, a.TLS, a.TLSInfo
		}
	}
	if len(toPortal) > 0 {
		t.toPortal(ctx, d, toPortal, why, &att)
	}
	for _, i := range toSMIME {
		sd := *d
		sd.Route, sd.Domain, sd.Rcpts = queue.RouteSMIME, strings.ToLower(domainOf(d.Rcpts[i])), []string{d.Rcpts[i]}
		a := t.SMIME.Deliver(ctx, &sd)
		if len(a.Rcpts) == 1 {
			att.Rcpts[i] = a.Rcpts[0]
		} else {
			att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 the S/MIME transport gave no result"}
		}
		if a.Relay != "" {
			att.Relay, att.TLS, att.TLSInfo = a.Relay, a.TLS, a.TLSInfo
		}
	}
	return att
}

func (t *Transport) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

func (t *Transport) record(ctx context.Context, d *queue.Delivery, action, rcpt, detail string) error {
	if t.Audit == nil {
		return nil
	}
	now := time.Now()
	if t.Now != nil {
		now = t.Now()
	}
	return t.Audit(ctx, &store.AuditEvent{At: now, Actor: "gateway", Action: action, Object: d.Msg.ID, Addrs: []string{rcpt}, Detail: detail})
}

func (t *Transport) toPortal(ctx context.Context, d *queue.Delivery, idx []int, why []string, att *queue.Attempt) {
	if t.Portal == nil {
		for _, i := range idx {
			att.Rcpts[i] = queue.RcptResult{Text: "451 4.7.0 no usable key and no portal: " + why[0]}
		}
		return
	}
	pd := *d
	pd.Route = queue.RoutePortal
	pd.Rcpts = nil
	for n, i := range idx {
		if err := t.record(ctx, d, "encrypt.portal", d.Rcpts[i], "action="+t.Action+" why="+fmt.Sprintf("%q", why[n])); err != nil {
			att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 the audit log cannot be written: " + err.Error()}
			continue
		}
		pd.Rcpts = append(pd.Rcpts, d.Rcpts[i])
	}
	if len(pd.Rcpts) == 0 {
		return
	}
	pa := t.Portal.Deliver(ctx, &pd)
	j := 0
	for _, i := range idx {
		if att.Rcpts[i].Text != "" {
			continue
		}
		if j < len(pa.Rcpts) {
			att.Rcpts[i] = pa.Rcpts[j]
		}
		j++
	}
	if att.Relay == "" {
		att.Relay = pa.Relay
	}
}

func (t *Transport) deliverOne(ctx context.Context, d *queue.Delivery, rcpt string, ch *Choice) queue.Attempt {
	fail := func(permanent bool, text string) queue.Attempt {
		return queue.Attempt{Rcpts: []queue.RcptResult{{Permanent: permanent, Text: text}}}
	}
	f, err := os.CreateTemp(t.TempDir, "encrypted-*")
	if err != nil {
		return fail(false, "451 4.3.0 cannot write the encrypted copy: "+err.Error())
	}
	defer os.Remove(f.Name())
	defer f.Close()
	src := io.NewSectionReader(d.Body, 0, d.Size)
	algs, err := t.encryptPGP(ctx, f, src, d.Msg.HeaderFrom, ch.Keys)
	if err != nil {
		// Not retried in vain forever: a message the library cannot
		// encrypt to this key fails for good, and the sender gets a DSN.
		t.log().Error("encryption failed", "msgid", d.Msg.ID, "rcpt_domain", domainOf(rcpt), "err", err)
		return fail(true, "554 5.7.0 the message could not be encrypted to the recipient's key")
	}
	if t.Preamble != nil {
		text, ok, err := t.Preamble(ctx, d, rcpt)
		if err != nil {
			return fail(false, "451 4.3.0 the message could not be sealed into the portal for the preamble: "+err.Error())
		}
		if ok {
			wf, err := t.wrap(f, text)
			if err != nil {
				return fail(false, "451 4.3.0 cannot write the encrypted copy: "+err.Error())
			}
			defer os.Remove(wf.Name())
			defer wf.Close()
			f = wf
			algs += " preamble"
		}
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return fail(false, "451 4.3.0 "+err.Error())
	}
	if err := t.record(ctx, d, "encrypt.pgp", rcpt, Describe(ch.Keys)+" "+algs); err != nil {
		return fail(false, "451 4.3.0 the audit log cannot be written: "+err.Error())
	}
	nd := *d
	nd.Route, nd.Domain, nd.Rcpts, nd.Body, nd.Size = queue.RouteOutbound, strings.ToLower(domainOf(rcpt)), []string{rcpt}, f, size
	a := t.Next.Deliver(ctx, &nd)
	if len(a.Rcpts) != 1 {
		return fail(false, "451 4.3.0 the outbound transport gave no result")
	}
	return a
}

// wrap writes enc (rewound) with text as its preamble to a new temporary
// file (WrapWithPreamble).
func (t *Transport) wrap(enc *os.File, text string) (*os.File, error) {
	if _, err := enc.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	wf, err := os.CreateTemp(t.TempDir, "encrypted-*")
	if err != nil {
		return nil, err
	}
	if err := WrapWithPreamble(wf, enc, text); err != nil {
		wf.Close()
		os.Remove(wf.Name())
		return nil, err
	}
	return wf, nil
}

func (t *Transport) encryptPGP(ctx context.Context, dst io.Writer, src io.Reader, headerFrom string, keys []keyring.Key) (string, error) {
	opt := pgp.Options{ProtectHeaders: t.ProtectHeaders, Now: t.Now}
	for _, k := range keys {
		ck, err := crypto.NewKeyFromReader(bytes.NewReader(k.Raw))
		if err != nil {
			return "", fmt.Errorf("key %s: %w", k.Fingerprint, err)
		}
		opt.Recipients = append(opt.Recipients, ck)
	}
	if t.Signer != nil {
		s, err := t.Signer(ctx, headerFrom)
		if err != nil {
			return "", fmt.Errorf("the signing key: %w", err)
		}
		opt.Signer = s
	}
	res, err := pgp.Encrypt(dst, src, opt)
	if err != nil {
		return "", err
	}
	return res.String(), nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}
