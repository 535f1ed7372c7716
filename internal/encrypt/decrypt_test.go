package encrypt

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ProtonMail/gopenpgp/v3/crypto"

	"sealpost/internal/pgp"
	"sealpost/internal/queue"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

type captureTransport struct{ got [][]byte }

func (c *captureTransport) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	b, _ := io.ReadAll(io.NewSectionReader(d.Body, 0, d.Size))
	c.got = append(c.got, b)
	return queue.Attempt{Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
}

// TestDecrypterForStaff: sqop encrypts to a staff key the organisation
// holds (a file in the staff key directory); the mail host gets the
// message decrypted, with the result at the top. Outbound mail, and mail
// for a key not held, pass unchanged.
func TestDecrypterForStaff(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("sqop"); err != nil {
		testutil.Missing(t, "sqop is not installed")
	}
	dir := t.TempDir()
	staff, _ := pgp.GenerateKey("Staff", "staff@council.example")
	arm, _ := staff.Armor()
	keyDir := filepath.Join(dir, "openpgp-staff")
	os.Mkdir(keyDir, 0o700)
	os.WriteFile(filepath.Join(keyDir, "staff.asc"), []byte(arm), 0o600)
	keys, err := LoadSecretKeys(keyDir)
	if err != nil || len(keys) != 1 {
		t.Fatal(err)
	}
	pub, _ := staff.GetArmoredPublicKey()
	os.WriteFile(filepath.Join(dir, "staff.cert"), []byte(pub), 0o600)
	cmd := exec.Command("sqop", "encrypt", filepath.Join(dir, "staff.cert"))
	cmd.Stdin = strings.NewReader("Content-Type: text/plain\r\n\r\nInbound secret.\r\n")
	armoured, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	msg := "From: p@partner.example\r\nTo: staff@council.example\r\nSubject: in\r\nMIME-Version: 1.0\r\n" +
		"Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; boundary=\"b\"\r\n\r\n" +
		"--b\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--b\r\nContent-Type: application/octet-stream\r\n\r\n" +
		string(armoured) + "\r\n--b--\r\n"
	next := &captureTransport{}
	var audited []string
	dec := &Decrypter{Next: next, Keys: keys, AuthServ: "gw.council.example", TempDir: dir,
		Audit: func(ctx context.Context, e *store.AuditEvent) error {
			audited = append(audited, e.Action+" "+e.Detail)
			return nil
		}}
	deliver := func(direction, body string) string {
		dec.Deliver(context.Background(), &queue.Delivery{Msg: &store.Message{ID: "m", Direction: direction}, Route: queue.RouteMailHost,
			Rcpts: []string{"staff@council.example"}, Body: strings.NewReader(body), Size: int64(len(body))})
		return string(next.got[len(next.got)-1])
	}
	got := deliver("in", msg)
	if !strings.HasPrefix(got, "Authentication-Results: gw.council.example; x-pgp=pass (decrypted; signature none)\r\n") ||
		!strings.Contains(got, "Inbound secret.") || strings.Contains(got, "multipart/encrypted") || !strings.Contains(got, "Subject: in\r\n") {
		t.Fatalf("mail host got:\n%s", got)
	}
	if len(audited) != 1 || !strings.HasPrefix(audited[0], "decrypt.pgp x-pgp=decrypted") {
		t.Fatalf("audit %q", audited)
	}
	if got := deliver("out", msg); got != msg {
		t.Fatal("outbound mail changed")
	}
	other, _ := pgp.GenerateKey("Other", "other@council.example")
	dec.Keys = append(dec.Keys[:0:0], other)
	if got := deliver("in", msg); got != msg || !bytes.Equal([]byte(got), []byte(msg)) {
		t.Fatal("mail for a key not held was changed")
	}
	// A passphrase-protected key is refused with a reason.
	locked, err := crypto.PGP().LockKey(staff, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	la, _ := locked.Armor()
	os.WriteFile(filepath.Join(keyDir, "locked.asc"), []byte(la), 0o600)
	if _, err := LoadSecretKeys(keyDir); err == nil || !strings.Contains(err.Error(), "passphrase") {
		t.Fatalf("locked key: %v", err)
	}
}
