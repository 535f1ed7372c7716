package encrypt

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/keyring"
	"sealpost/internal/pgp"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

// Decrypter is the transport in front of the mail host for inbound mail:
// PGP/MIME mail encrypted to a staff key the organisation holds is
// decrypted before it reaches the mail host, with the result in an
// Authentication-Results field (RFC 8601 §2.7.7 allows the x- method
// "x-pgp"); the signature inside is checked against the sender's key as
// the keyring finds it. Mail it cannot decrypt (not for a key held here,
// not PGP/MIME) goes on unchanged.
type Decrypter struct {
	Next queue.Transport
	// Keys are the unlocked secret keys the organisation holds.
	Keys     []*crypto.Key
	Keyring  *keyring.Keyring // the senders' keys, for the signature; nil: not checked
	AuthServ string           // authserv-id (smtp.hostname)
	TempDir  string
	Audit    func(ctx context.Context, e *store.AuditEvent) error
	Log      *slog.Logger
}

// LoadSecretKeys reads the armoured or binary OpenPGP secret keys (not
// passphrase-protected) in dir; a missing dir is no keys.
func LoadSecretKeys(dir string) ([]*crypto.Key, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*crypto.Key
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		k, err := crypto.NewKeyFromReader(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %v", e.Name(), err)
		}
		if !k.IsPrivate() {
			return nil, fmt.Errorf("%s: not a secret key", e.Name())
		}
		if locked, err := k.IsLocked(); err != nil || locked {
			return nil, fmt.Errorf("%s: the secret key is protected by a passphrase; store it without one (the file is the protection: mode 0600)", e.Name())
		}
		out = append(out, k)
	}
	return out, nil
}

// Deliver implements queue.Transport.
func (t *Decrypter) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	if d.Msg.Direction != "in" || len(t.Keys) == 0 || !isPGPMIME(d.Body, d.Size) {
		return t.Next.Deliver(ctx, d)
	}
	f, err := os.CreateTemp(t.TempDir, "decrypted-*")
	if err != nil {
		return t.Next.Deliver(ctx, d)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	from := headerFrom(d.Body, d.Size)
	var verify []*crypto.Key
	if t.Keyring != nil && from != "" {
		if ans, err := t.Keyring.Lookup(ctx, from, keyring.Options{Kind: keyring.KindPGP}); err == nil {
			for _, k := range ans.Keys {
				if ck, err := crypto.NewKey(k.Raw); err == nil {
					verify = append(verify, ck)
				}
			}
		}
	}
	// The decrypted message, with the result in front (RFC 8601 §5: added
	// at the top).
	var buf bytes.Buffer
	res, err := pgp.Decrypt(&buf, io.NewSectionReader(d.Body, 0, d.Size), t.Keys, verify)
	if err != nil {
		// Not for a key held here, or damaged: the mail host gets it as it
		// came, and the recipient's own client tries.
		t.log().Info("inbound PGP/MIME not decrypted", "msgid", d.Msg.ID, "err", err)
		return t.Next.Deliver(ctx, d)
	}
	sig := res.Signature
	detail := "x-pgp=decrypted signature=" + sig
	if res.SignedBy != "" {
		detail += " signer=" + res.SignedBy
	}
	fmt.Fprintf(f, "Authentication-Results: %s; x-pgp=pass (decrypted; signature %s%s)\r\n", t.AuthServ, sig, signer(res.SignedBy))
	f.Write(buf.Bytes())
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return t.Next.Deliver(ctx, d)
	}
	if t.Audit != nil {
		if err := t.Audit(ctx, &store.AuditEvent{At: time.Now(), Actor: "gateway", Action: "decrypt.pgp", Object: d.Msg.ID, Addrs: d.Rcpts, Detail: detail}); err != nil {
			return queue.Attempt{Rcpts: failAll(len(d.Rcpts), "451 4.3.0 the audit log cannot be written")}
		}
	}
	nd := *d
	nd.Body, nd.Size = f, size
	return t.Next.Deliver(ctx, &nd)
}

func signer(fpr string) string {
	if fpr == "" {
		return ""
	}
	return " by " + fpr
}

func failAll(n int, text string) []queue.RcptResult {
	out := make([]queue.RcptResult, n)
	for i := range out {
		out[i] = queue.RcptResult{Text: text}
	}
	return out
}

func (t *Decrypter) log() *slog.Logger {
	if t.Log != nil {
		return t.Log
	}
	return slog.Default()
}

func readTop(r io.ReaderAt, size int64) *mail.Message {
	n := size
	if n > 256<<10 {
		n = 256 << 10
	}
	m, err := mail.ReadMessage(bufio.NewReader(io.NewSectionReader(r, 0, n)))
	if err != nil {
		return nil
	}
	return m
}

func isPGPMIME(r io.ReaderAt, size int64) bool {
	m := readTop(r, size)
	if m == nil {
		return false
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	return err == nil && mt == "multipart/encrypted" && strings.EqualFold(params["protocol"], "application/pgp-encrypted")
}

func headerFrom(r io.ReaderAt, size int64) string {
	m := readTop(r, size)
	if m == nil {
		return ""
	}
	a, err := mail.ParseAddress(m.Header.Get("From"))
	if err != nil {
		return ""
	}
	return strings.ToLower(a.Address)
}
