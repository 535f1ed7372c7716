package gateway

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
)

// TestPortalPerClientCodeLimits: one client address may ask for codes, and
// try codes, only 30 times in 10 minutes, whatever the addresses: the
// per-address limits (codes per hour, five tries) alone would let one
// client work through many recipients' links.
func TestPortalPerClientCodeLimits(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	var rcpts []string
	for i := 1; i <= 31; i++ {
		rcpts = append(rcpts, fmt.Sprintf("person%02d@citizen.example", i))
	}
	// One recipient visible in To: not a bulk message; 31 in the envelope.
	if code, reply := outbound(t, e, "staff@example.gov.uk", rcpts, message("staff@example.gov.uk", rcpts[0], "[secure] many", "hello")); code != 250 {
		t.Fatal(reply)
	}
	b := newBrowser(t, e)
	var landings []string
	for _, r := range rcpts {
		landings = append(landings, "/m/"+linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, r, "Secure message", 0).Data))[1])
	}
	for i, l := range landings {
		b.get(l)
		st, page := b.post(l+"/code", url.Values{})
		if i < 30 && st != 200 {
			t.Fatalf("code %d: %d\n%.300s", i+1, st, page)
		}
		if i == 30 && (st != 429 || !strings.Contains(page, "Too many codes asked for")) {
			t.Fatalf("code 31 from one client: %d, want 429\n%.300s", st, page)
		}
	}
	// Thirty wrong codes over six addresses (five each locks each one);
	// the 31st, for a seventh address, meets the client's limit.
	for i := 0; i < 31; i++ {
		l := landings[i/5]
		b.get(l)
		st, page := b.post(l+"/verify", url.Values{"code": {"00000000"}})
		if i == 30 && (st != 429 || !strings.Contains(page, "Too many attempts")) {
			t.Fatalf("code try 31 from one client: %d, want 429 Too many attempts\n%.300s", st, page)
		}
	}
}

// TestPortalLockStopsTheRightCode: while an address is locked, not even
// the right code signs in (the lock is checked before the code, not only
// by deleting the code at lock-out time).
func TestPortalLockStopsTheRightCode(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] locked", "hello")); code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	b := newBrowser(t, e)
	n := len(e.sink.Messages())
	b.get(landing)
	b.post(landing+"/code", url.Values{})
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "one-time code", n).Data))
	// The address is locked (say by failures on the sender's sign-in page
	// a moment ago) while this code is still valid.
	ctx := context.Background()
	l, err := e.gw.Store.GetPortalLock(ctx, "jane@citizen.example")
	if err != nil {
		t.Fatal(err)
	}
	l.Lockouts, l.LockedUntil = 1, time.Now().Add(15*time.Minute)
	if err := e.gw.Store.PutPortalLock(ctx, l); err != nil {
		t.Fatal(err)
	}
	if st, page := b.post(landing+"/verify", url.Values{"code": {c[1]}}); st != 429 || !strings.Contains(page, "Too many wrong codes") {
		t.Fatalf("the right code while locked: %d\n%.300s", st, page)
	}
	if st, page := b.get(landing); st != 200 || !strings.Contains(page, "Email me a code") {
		t.Fatalf("signed in while locked: %d", st)
	}
}

// fromAddr returns a dialer whose connections come from a loopback
// address of its own (127.0.0.n), so that a test can play many clients.
func fromAddr(n int) *net.Dialer {
	return &net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(n))}}
}

// TestLockoutPerUserAcrossClients: five failures for one user name, each
// from a different client address, lock the user out everywhere: the
// per-address lock alone would let a spread-out guesser go on. For the
// console and for SMTP AUTH.
func TestLockoutPerUserAcrossClients(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Org.ConnectorNetworks = nil })
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	addUser(t, e.gw.Store, "alice", "correct horse battery", "sender")
	browserFrom := func(n int) *webClient {
		b := newBrowser(t, e)
		b.c.Transport = &http.Transport{DialContext: fromAddr(n).DialContext}
		return b
	}
	for i := 2; i <= 6; i++ {
		b := browserFrom(i)
		b.get("/console/login")
		if st, _ := b.post("/console/login", url.Values{"user": {"audrey"}, "password": {"wrong"}}); st != 401 {
			t.Fatalf("failure from 127.0.0.%d: %d, want 401", i, st)
		}
	}
	b := browserFrom(7)
	b.get("/console/login")
	if st, page := b.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}}); st != 429 || !strings.Contains(page, "Too many") {
		t.Fatalf("console: after 5 failures from 5 addresses, the right password from a sixth: %d, want 429", st)
	}

	smtpFrom := func(n int) *client {
		conn, err := fromAddr(n).Dial("tcp", e.gw.OutboundAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		c := &client{t: t, conn: conn, r: bufio.NewReader(conn)}
		if code, msg := c.reply(); code != 220 {
			t.Fatalf("greeting %d %s", code, msg)
		}
		c.expect("EHLO laptop", 250)
		c.starttls()
		c.expect("EHLO laptop", 250)
		return c
	}
	for i := 2; i <= 6; i++ {
		if code, msg := smtpFrom(i).cmd(plain("alice", "guess")); code != 535 {
			t.Fatalf("AUTH failure from 127.0.0.%d: %s, want 535", i, msg)
		}
	}
	if code, msg := smtpFrom(7).cmd(plain("alice", "correct horse battery")); code != 454 {
		t.Fatalf("SMTP: after 5 failures from 5 addresses, the right password from a sixth: %s, want 454", msg)
	}
}
