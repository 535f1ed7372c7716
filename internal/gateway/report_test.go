package gateway

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/report"
)

func TestUsageReport(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	send := func(from, to, subject, body string) {
		t.Helper()
		if code, reply := outbound(t, e, from, []string{to}, message(from, to, subject, body)); code != 250 && code != 550 {
			t.Fatal(reply)
		}
	}
	send("alice@example.gov.uk", "x@one.example", "plain", "hello")
	send("alice@example.gov.uk", "y@two.example", "[secure] sealed", "NHS no. 943 476 5919")
	send("bob@example.gov.uk", "z@two.example", "card", "card 4111 1111 1111 1111 exp 09/27")
	send("carol@example.gov.uk", "it@example.gov.uk", "key", "-----BEGIN RSA PRIVATE KEY-----\r\nMIIB\r\n-----END RSA PRIVATE KEY-----")
	waitQueueEmpty(t, e)
	now := time.Now()
	u, err := report.Build(context.Background(), e.gw.Store, now.Add(-time.Hour), now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(u.Months) != 1 {
		t.Fatalf("%+v", u)
	}
	m := u.Months[0]
	if m.Protected["portal"] != 2 || m.Protected["reject"] != 1 || m.ProtectedTotal != 3 || m.Sealed != 2 {
		t.Fatalf("protected %v total %d sealed %d", m.Protected, m.ProtectedTotal, m.Sealed)
	}
	if m.LicensedSenders != 3 || u.LicensedSenders != 3 {
		t.Fatalf("licensed senders %d/%d", m.LicensedSenders, u.LicensedSenders)
	}
	if m.Incidents["uk-nhs-number"] != 1 || m.Incidents["payment-card"] != 1 || m.Incidents["private-key"] != 1 {
		t.Fatalf("incidents %v", m.Incidents)
	}
	// Outside deliveries: the plain message and the two notifications.
	if m.OutsideDelivered != 3 || len(m.TopDomains) != 2 || m.TopDomains[0].Domain != "two.example" || m.TopDomains[0].Deliveries != 2 {
		t.Fatalf("domains %d %+v", m.OutsideDelivered, m.TopDomains)
	}
	var b bytes.Buffer
	u.CSV(&b)
	if !strings.Contains(b.String(), ",protected_messages,portal,2\n") || !strings.Contains(b.String(), "period,licensed_senders,distinct,3") {
		t.Fatalf("csv:\n%s", b.String())
	}
}
