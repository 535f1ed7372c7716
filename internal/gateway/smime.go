package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"sealpost/internal/cms"
	"sealpost/internal/config"
	"sealpost/internal/encrypt"
	"sealpost/internal/queue"
	"sealpost/internal/smime"
	"sealpost/internal/store"
)

// smimeTransport carries out the encrypt-smime action (route smime): for
// each recipient it chooses a certificate; those with one get the message
// S/MIME-encrypted over the outbound route, the others get the portal, and
// the audit log says for each which certificate (fingerprint, source,
// algorithms) or why none.
type smimeTransport struct {
	chooser      *smime.Chooser // nil: S/MIME is switched off
	opt          smime.Options
	keyTransport cms.KeyTransport
	next, portal queue.Transport
	portalOn     func() bool
	tmpDir       string
	// preamble: as encrypt.Transport.Preamble; nil: none.
	preamble func(ctx context.Context, d *queue.Delivery, rcpt string) (string, bool, error)
	record   func(context.Context, *store.AuditEvent) error
	now      func() time.Time
	log      *slog.Logger
}

// newSMIMETransport builds the transport from [smime]; file errors name
// their key.
func newSMIMETransport(cfg *config.Config, next, portal queue.Transport, portalOn func() bool,
	record func(context.Context, *store.AuditEvent) error, log *slog.Logger) (*smimeTransport, error) {
	t := &smimeTransport{next: next, portal: portal, portalOn: portalOn, record: record, now: time.Now, log: log,
		tmpDir: cfg.Path("smime/tmp")}
	s := cfg.SMIME
	if !s.Enabled {
		return t, nil
	}
	roots, err := certPool(pathOrEmpty(cfg, s.TrustAnchors))
	if err != nil {
		return nil, cfg.KeyError("smime.trust_anchors", err.Error())
	}
	var inter *x509.CertPool
	if s.Intermediates != "" {
		if inter, err = certPool(pathOrEmpty(cfg, s.Intermediates)); err != nil {
			return nil, cfg.KeyError("smime.intermediates", err.Error())
		}
	}
	t.chooser = &smime.Chooser{
		Sources: []smime.CertSource{smime.DirSource{Dir: pathOrEmpty(cfg, s.CertificatesDir)}},
		Roots:   roots, Intermediates: inter, SubjectEmail: s.MatchSubjectEmail,
		RequireRevocation: s.Revocation == "require",
	}
	if s.Revocation != "off" {
		t.chooser.Revocation = &smime.CRLCache{Dir: pathOrEmpty(cfg, s.CRLDir), Offline: s.Offline, Log: log}
	}
	if s.Cipher == "aes-256-cbc" {
		t.opt.Cipher = cms.AES256CBC
	}
	if s.RSAKeyTransport == "pkcs1v15" {
		t.keyTransport = cms.PKCS1v15
	}
	if s.SignCert != "" {
		kp, err := tls.LoadX509KeyPair(pathOrEmpty(cfg, s.SignCert), pathOrEmpty(cfg, s.SignKey))
		if err != nil {
			return nil, cfg.KeyError("smime.sign_cert", err.Error())
		}
		key, ok := kp.PrivateKey.(crypto.Signer)
		if !ok {
			return nil, cfg.KeyError("smime.sign_key", "the key cannot sign")
		}
		sg := &smime.Signer{Cert: kp.Leaf, Key: key}
		for _, der := range kp.Certificate[1:] {
			if c, err := x509.ParseCertificate(der); err == nil {
				sg.Chain = append(sg.Chain, c)
			}
		}
		t.opt.Signer = sg
	}
	// The directories the operator fills exist from the first start, so
	// an empty one reads as "no certificate", not as an error.
	for _, d := range []string{t.tmpDir, pathOrEmpty(cfg, s.CertificatesDir), pathOrEmpty(cfg, s.CRLDir)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func certPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	certs, err := smime.ParseCertificates(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	p := x509.NewCertPool()
	for _, c := range certs {
		p.AddCert(c)
	}
	return p, nil
}

// Deliver implements queue.Transport.
func (t *smimeTransport) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	var encIdx, fallIdx []int
	var rcpts []cms.Recipient
	var events []*store.AuditEvent
	now := t.now()
	for i, r := range d.Rcpts {
		var ch smime.Choice
		if t.chooser == nil {
			ch = smime.Choice{Address: r, Reason: "S/MIME is switched off (smime.enabled = false)"}
		} else {
			ch = t.chooser.Choose(ctx, r)
		}
		if ch.Use == nil {
			fallIdx = append(fallIdx, i)
			events = append(events, &store.AuditEvent{At: now, Actor: "gateway", Action: "smime.fallback", Object: d.Msg.ID,
				Addrs: []string{r}, Detail: "to=portal reason=" + oneLine(ch.Reason)})
			continue
		}
		cr := cms.Recipient{Cert: ch.Use.Cert, KeyTransport: t.keyTransport}
		encIdx = append(encIdx, i)
		rcpts = append(rcpts, cr)
		events = append(events, &store.AuditEvent{At: now, Actor: "gateway", Action: "smime.encrypt", Object: d.Msg.ID, Addrs: []string{r},
			Detail: "cert=" + ch.Use.Fingerprint + " source=" + ch.Use.Source + " algorithms=" + smime.Algorithms(t.opt.Cipher, cr) +
				" signed=" + fmt.Sprint(t.opt.Signer != nil) + " reason=" + oneLine(ch.Use.Reason)})
	}
	// What cannot be recorded is not sent: the key used and its source
	// are part of the evidence.
	for _, e := range events {
		if err := t.record(ctx, e); err != nil {
			return tempFailAll(d, "451 4.3.0 audit log unavailable")
		}
	}
	if len(fallIdx) > 0 {
		t.fallback(ctx, d, fallIdx, &att)
	}
	if len(encIdx) > 0 {
		t.encryptAll(ctx, d, encIdx, rcpts, &att)
	}
	return att
}

// encryptAll sends one encrypted message to the recipients at idx without
// a preamble, and one of its own (its portal link is theirs alone) to each
// with one.
func (t *smimeTransport) encryptAll(ctx context.Context, d *queue.Delivery, idx []int, rcpts []cms.Recipient, att *queue.Attempt) {
	type group struct {
		idx   []int
		rcpts []cms.Recipient
		text  string
	}
	plain := group{}
	var groups []group
	for k, i := range idx {
		if t.preamble == nil {
			plain.idx, plain.rcpts = append(plain.idx, i), append(plain.rcpts, rcpts[k])
			continue
		}
		text, ok, err := t.preamble(ctx, d, d.Rcpts[i])
		switch {
		case err != nil:
			att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 the message could not be sealed into the portal for the preamble"}
			t.log.Error("smime: sealing for the preamble", "msgid", d.Msg.ID, "err", err)
		case ok:
			groups = append(groups, group{idx: []int{i}, rcpts: []cms.Recipient{rcpts[k]}, text: text})
		default:
			plain.idx, plain.rcpts = append(plain.idx, i), append(plain.rcpts, rcpts[k])
		}
	}
	if len(plain.idx) > 0 {
		groups = append(groups, plain)
	}
	for _, g := range groups {
		sub, err := t.encrypted(ctx, d, g.idx, g.rcpts, g.text)
		if err != nil {
			t.log.Error("smime: encrypting", "msgid", d.Msg.ID, "err", err)
			for _, i := range g.idx {
				att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 S/MIME encryption failed"}
			}
			continue
		}
		for k, i := range g.idx {
			att.Rcpts[i] = sub.Rcpts[k]
		}
		att.TLS, att.Relay, att.TLSInfo = sub.TLS, sub.Relay, sub.TLSInfo
	}
}

// fallback hands recipients without a usable certificate to the portal,
// or, with the portal off, fails them with the reason (the sender gets a
// DSN; plain delivery is never the fallback).
func (t *smimeTransport) fallback(ctx context.Context, d *queue.Delivery, idx []int, att *queue.Attempt) {
	if !t.portalOn() {
		for _, i := range idx {
			att.Rcpts[i] = queue.RcptResult{Permanent: true, Text: "550 5.7.1 no usable S/MIME certificate for the recipient and the portal is off"}
		}
		return
	}
	sub := &queue.Delivery{Msg: d.Msg, Route: queue.RoutePortal, Rcpts: pick(d.Rcpts, idx), Body: d.Body, Size: d.Size}
	res := t.portal.Deliver(ctx, sub)
	for k, i := range idx {
		att.Rcpts[i] = res.Rcpts[k]
	}
}

// encrypted writes one S/MIME message for all of idx to a temporary file
// (with preamble, unless ""; encrypt.WrapWithPreamble) and hands it to the
// outbound route.
func (t *smimeTransport) encrypted(ctx context.Context, d *queue.Delivery, idx []int, rcpts []cms.Recipient, preamble string) (queue.Attempt, error) {
	f, err := os.CreateTemp(t.tmpDir, "smime-*")
	if err != nil {
		return queue.Attempt{}, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if err := smime.EncryptMessage(f, d.Body, d.Size, rcpts, t.opt); err != nil {
		return queue.Attempt{}, err
	}
	if preamble != "" {
		wf, err := os.CreateTemp(t.tmpDir, "smime-*")
		if err != nil {
			return queue.Attempt{}, err
		}
		defer os.Remove(wf.Name())
		defer wf.Close()
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return queue.Attempt{}, err
		}
		if err := encrypt.WrapWithPreamble(wf, f, preamble); err != nil {
			return queue.Attempt{}, err
		}
		f = wf
	}
	st, err := f.Stat()
	if err != nil {
		return queue.Attempt{}, err
	}
	sub := &queue.Delivery{Msg: d.Msg, Route: queue.RouteOutbound, Domain: d.Domain, Rcpts: pick(d.Rcpts, idx),
		Body: f, Size: st.Size(), RequireTLS: d.RequireTLS}
	return t.next.Deliver(ctx, sub), nil
}

func pick(all []string, idx []int) []string {
	out := make([]string, len(idx))
	for k, i := range idx {
		out[k] = all[i]
	}
	return out
}

func tempFailAll(d *queue.Delivery, text string) queue.Attempt {
	att := queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	for i := range att.Rcpts {
		att.Rcpts[i] = queue.RcptResult{Text: text}
	}
	return att
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
