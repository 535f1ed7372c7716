package gateway

import (
	"bytes"
	"context"
	"net/mail"
	"strings"
	"time"

	"sealpost/internal/inbound"
	"sealpost/internal/keyring"
	"sealpost/internal/store"
)

// harvest keeps the keys an inbound message carries (keyring.Carried:
// attached OpenPGP certificates, the verified S/MIME signer's certificate)
// as the "harvested" rung of the discovery ladder, for the message's From
// address, when the message passed DMARC: only then is the From domain
// authenticated (RFC 7489 §3.1), so only then may a key claim the address.
// A failure here never affects the message: it is logged and the mail is
// delivered as the verdict says.
func (a *inboundAuth) harvest(ctx context.Context, v *inbound.Verdict, msg []byte) {
	cfg := a.g.Config()
	if a.g.Keyring == nil || !cfg.Encryption.Enabled || v.Action == inbound.Quarantine {
		return
	}
	pass := v.DMARC.Status == "pass"
	carried := keyring.Carried(msg)
	if len(carried) == 0 {
		return
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return
	}
	from, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil || !strings.EqualFold(domainOf(from.Address), v.From) {
		return // the authenticated domain is v.From's; nothing else is
	}
	for _, data := range carried {
		keys, err := a.g.Keyring.Harvest(ctx, from.Address, data, pass)
		if err != nil {
			a.g.Log.Info("key not harvested", "from_domain", v.From, "why", err)
			continue
		}
		for _, k := range keys {
			a.g.audit.recorder.Record(ctx, &store.AuditEvent{At: time.Now(), Actor: "gateway", Action: "key.harvested", Object: k.Fingerprint,
				Addrs: []string{from.Address}, Detail: "kind=" + k.Kind + " source=harvested trust=" + k.Trust + " dmarc=pass"})
		}
	}
}
