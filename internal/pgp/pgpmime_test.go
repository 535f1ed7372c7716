package pgp

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ProtonMail/gopenpgp/v3/crypto"
	"github.com/ProtonMail/gopenpgp/v3/profile"
)

func keyWith(t *testing.T, p *profile.Custom, addr string) *crypto.Key {
	t.Helper()
	k, err := crypto.PGPWithProfile(p).KeyGeneration().AddUserId("R", addr).New().GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func public(t *testing.T, k *crypto.Key) *crypto.Key {
	t.Helper()
	p, err := k.ToPublic()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSEIPDv2OnlyWhenAdvertised: AEAD (SEIPDv2) for a recipient whose key
// advertises it, SEIPDv1 as soon as one recipient's key does not; each
// message decrypts with the recipient's key.
func TestSEIPDv2OnlyWhenAdvertised(t *testing.T) {
	t.Parallel()
	v4aead := profile.RFC9580()
	v4aead.V6 = false
	withV2 := keyWith(t, v4aead, "new@partner.example")
	withoutV2 := keyWith(t, profile.Default(), "old@partner.example")
	if withV2.GetVersion() != 4 {
		t.Fatalf("test key is v%d", withV2.GetVersion())
	}
	for _, c := range []struct {
		name string
		keys []*crypto.Key
		want string
	}{
		{"advertised", []*crypto.Key{withV2}, "SEIPDv2/"},
		{"not advertised", []*crypto.Key{withoutV2}, "SEIPDv1"},
		{"one of two does not", []*crypto.Key{withV2, withoutV2}, "SEIPDv1"},
	} {
		var pubs []*crypto.Key
		for _, k := range c.keys {
			pubs = append(pubs, public(t, k))
		}
		var out bytes.Buffer
		res, err := Encrypt(&out, strings.NewReader(testMessage()), Options{Recipients: pubs})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(res.Data, c.want) {
			t.Errorf("%s: %s, want %s", c.name, res.Data, c.want)
		}
		_, armoured := pgpMIMEParts(t, out.Bytes())
		for _, k := range c.keys {
			dec, err := crypto.PGP().Decryption().DecryptionKey(k).New()
			if err != nil {
				t.Fatal(err)
			}
			plain, err := dec.Decrypt(armoured, crypto.Armor)
			if err != nil {
				t.Fatalf("%s: decrypting: %v", c.name, err)
			}
			checkInner(t, c.name, plain.Bytes())
		}
	}
}

// TestGeneratedKeysAreV4: what sealpost generates, Debian 12's peers can read.
func TestGeneratedKeysAreV4(t *testing.T) {
	t.Parallel()
	k, err := GenerateKey("Council", "gw@council.example")
	if err != nil {
		t.Fatal(err)
	}
	if k.GetVersion() != 4 {
		t.Fatalf("v%d", k.GetVersion())
	}
}

// TestHeaderMovesIntoEntity: Content-* fields go inside, the rest stays
// outside; a message without Content-Type is text/plain inside (RFC 2045
// §5.2); folded fields survive.
func TestHeaderMovesIntoEntity(t *testing.T) {
	t.Parallel()
	k := keyWith(t, profile.Default(), "r@partner.example")
	msg := "From: a@council.example\nTo: r@partner.example,\n  s@partner.example\nSubject: hi\n\nbody\n"
	var out bytes.Buffer
	if _, err := Encrypt(&out, strings.NewReader(msg), Options{Recipients: []*crypto.Key{public(t, k)}}); err != nil {
		t.Fatal(err)
	}
	_, armoured := pgpMIMEParts(t, out.Bytes())
	if !bytes.HasPrefix(out.Bytes(), []byte("From: a@council.example\r\nTo: r@partner.example,\r\n  s@partner.example\r\nSubject: hi\r\nMIME-Version: 1.0\r\n")) {
		t.Fatalf("outer header %.120q", out.Bytes())
	}
	dec, _ := crypto.PGP().Decryption().DecryptionKey(k).New()
	plain, err := dec.Decrypt(armoured, crypto.Armor)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(plain.Bytes()); got != "Content-Type: text/plain; charset=us-ascii\r\n\r\nbody\n" {
		t.Fatalf("inner %q", got)
	}
	for _, bad := range []string{" starts folded: x\n\n", "no colon here\n\n"} {
		if _, err := Encrypt(&bytes.Buffer{}, strings.NewReader(bad), Options{Recipients: []*crypto.Key{public(t, k)}}); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}

// FuzzEncrypt: any input either is refused or gives a PGP/MIME message
// that decrypts to an entity; never a panic.
func FuzzEncrypt(f *testing.F) {
	f.Add([]byte(testMessage()))
	f.Add([]byte("Subject: x\r\n\r\n"))
	f.Add([]byte("X: y\r\n z\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b--\r\n"))
	k, err := GenerateKey("F", "f@x.example")
	if err != nil {
		f.Fatal(err)
	}
	pub, _ := k.ToPublic()
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		if _, err := Encrypt(&out, bytes.NewReader(data), Options{Recipients: []*crypto.Key{pub}}); err != nil {
			return
		}
		if !bytes.Contains(out.Bytes(), []byte("multipart/encrypted")) {
			t.Fatal("no multipart/encrypted")
		}
	})
}
