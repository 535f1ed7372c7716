package portal

import (
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
)

func TestReplyFormToken(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	cfg := config.Default()
	s := &Service{MACKey: []byte("k"), Config: func() *config.Config { return cfg }, Now: func() time.Time { return now }}
	jane := &target{m: &store.Sealed{ID: "m1"}, r: &store.SealedRecipient{Address: "jane@citizen.example"}}
	tok := s.replyForm(jane)
	if !s.formOK(jane, tok) {
		t.Fatalf("own form %q refused", tok)
	}
	if tok2 := s.replyForm(jane); tok2 == tok {
		t.Fatal("two forms, one token")
	}
	for name, other := range map[string]*target{
		"another message":   {m: &store.Sealed{ID: "m2"}, r: jane.r},
		"another recipient": {m: jane.m, r: &store.SealedRecipient{Address: "bob@other.example"}},
	} {
		if s.formOK(other, tok) {
			t.Errorf("a form of Jane's message is taken for %s", name)
		}
	}
	// The token with its last character changed (to one it is not).
	last := "0"
	if strings.HasSuffix(tok, "0") {
		last = "1"
	}
	for _, bad := range []string{"", "x", tok + "x", tok[:len(tok)-1] + last, "0123456789abcdef.abc.0123456789abcdefghjkmnpq"} {
		if s.formOK(jane, bad) {
			t.Errorf("form %q accepted", bad)
		}
	}
	now = now.Add(cfg.Portal.Remember.Duration + 25*time.Hour)
	if s.formOK(jane, tok) {
		t.Error("a form older than the longest session accepted")
	}
}
