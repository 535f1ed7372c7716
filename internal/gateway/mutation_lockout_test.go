package gateway

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"sealpost/internal/config"
)

// TestPortalSecondLockoutDoubles: after the first lock-out (15 minutes)
// has passed, five more wrong codes lock the address for twice as long.
func TestPortalSecondLockoutDoubles(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] twice", "hello")); code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	ctx := context.Background()
	b := newBrowser(t, e)
	for round, want := range []time.Duration{15 * time.Minute, 30 * time.Minute, time.Hour} {
		n := len(e.sink.Messages())
		b.get(landing)
		if st, page := b.post(landing+"/code", url.Values{}); st != 200 {
			t.Fatalf("round %d: code request %d\n%s", round, st, page)
		}
		mailTo(t, e.sink, "jane@citizen.example", "one-time code", n)
		for i := 1; i <= 5; i++ {
			b.post(landing+"/verify", url.Values{"code": {"00000000"}})
		}
		l, err := e.gw.Store.GetPortalLock(ctx, "jane@citizen.example")
		if err != nil {
			t.Fatal(err)
		}
		left := time.Until(l.LockedUntil)
		if l.Lockouts != round+1 || left < want-time.Minute || left > want+time.Minute {
			t.Fatalf("lock-out %d lasts %v (lock-outs %d), want %v", round+1, left.Round(time.Second), l.Lockouts, want)
		}
		// Let the lock-out pass, keep its history.
		l.LockedUntil = time.Now().Add(-time.Second)
		l.CodesSent = 0
		if err := e.gw.Store.PutPortalLock(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPortalPerClientLimits: one client address may try references only so
// often (30 in 10 minutes): guessing references for many messages is
// stopped by the client's limit, which no per-address limit covers.
func TestPortalPerClientLimits(t *testing.T) {
	e := start(t, nil)
	b := newBrowser(t, e)
	for i := 1; i <= 31; i++ {
		b.get("/r")
		st, page := b.post("/r", url.Values{"reference": {fmt.Sprintf("ZZZZZ-ZZ%03d", i)}})
		if i <= 30 && st != 404 {
			t.Fatalf("reference %d: %d\n%.300s", i, st, page)
		}
		if i == 31 && st != 429 {
			t.Fatalf("reference 31 from one client: %d, want 429", st)
		}
	}
}

// totpCodes are the codes valid now (the step before, now, the step after).
func totpCodes(t *testing.T, secret string) map[string]bool {
	codes := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		c, err := totp.GenerateCode(secret, time.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		codes[c] = true
	}
	return codes
}

// TestConsoleTOTPAndLockouts: an admin with TOTP needs the code as well as
// the password; five wrong codes lock the account even for the right
// password and code; and five failures from one client address lock that
// address for every user name.
func TestConsoleTOTPAndLockouts(t *testing.T) {
	e := start(t, nil)
	pw := addConsoleUser(t, e.gw.Store, "ada", "admin")
	b := newBrowser(t, e)
	b.get("/console/login")
	if st, page := b.post("/console/login", url.Values{"user": {"ada"}, "password": {pw}}); st != 200 || !strings.Contains(page, "Set up your authenticator") {
		t.Fatalf("first sign-in %d:\n%.500s", st, page)
	}
	secret := regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`).FindStringSubmatch(b.page)
	if secret == nil {
		t.Fatalf("no key on the enrolment page:\n%s", b.page)
	}
	code, _ := totp.GenerateCode(secret[1], time.Now())
	if st, page := b.post("/console/totp", url.Values{"code": {code}}); st != 200 || strings.Contains(page, "Set up your authenticator") {
		t.Fatalf("enrolment %d:\n%.500s", st, page)
	}
	valid := totpCodes(t, secret[1])
	bad := "000000"
	for n := 0; valid[bad]; n++ {
		bad = fmt.Sprintf("%06d", n*7919%1000000)
	}
	x := newBrowser(t, e)
	for i := 1; i <= 5; i++ {
		x.get("/console/login")
		if st, page := x.post("/console/login", url.Values{"user": {"ada"}, "password": {pw}, "code": {bad}}); st != 401 || !strings.Contains(page, "not right") {
			t.Fatalf("right password, wrong code (try %d): %d\n%.300s", i, st, page)
		}
	}
	good, _ := totp.GenerateCode(secret[1], time.Now().Add(30*time.Second))
	x.get("/console/login")
	if st, page := x.post("/console/login", url.Values{"user": {"ada"}, "password": {pw}, "code": {good}}); st != 429 || !strings.Contains(page, "Too many") {
		t.Fatalf("after 5 wrong codes, the right ones: %d, want 429", st)
	}

	// One client address, five user names: the address is locked.
	e2 := start(t, nil)
	apw := addConsoleUser(t, e2.gw.Store, "audrey", "auditor")
	y := newBrowser(t, e2)
	for i := 1; i <= 5; i++ {
		y.get("/console/login")
		y.post("/console/login", url.Values{"user": {fmt.Sprintf("guess%d", i)}, "password": {"wrong"}})
	}
	y.get("/console/login")
	if st, _ := y.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}}); st != 429 {
		t.Fatalf("after 5 failures from one address, another user: %d, want 429", st)
	}
}

// TestSMTPAuthLockoutPerClient: five failed AUTHs from one client address,
// each for a different user, lock the address out: the right password of a
// sixth user gets 454.
func TestSMTPAuthLockoutPerClient(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = nil })
	addUser(t, e.gw.Store, "alice", "correct horse battery", "sender")
	c := dial(t, e.gw.OutboundAddr)
	c.expect("EHLO laptop", 250)
	c.starttls()
	c.expect("EHLO laptop", 250)
	for i := 0; i < 5; i++ {
		c.cmd(plain(fmt.Sprintf("user%d", i), "guess"))
	}
	c2 := dial(t, e.gw.OutboundAddr)
	c2.expect("EHLO laptop", 250)
	c2.starttls()
	c2.expect("EHLO laptop", 250)
	if code, msg := c2.cmd(plain("alice", "correct horse battery")); code != 454 {
		t.Fatalf("after 5 failures from one address: %s, want 454 lock-out", msg)
	}
}
