package config

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

const minimal = `data_dir = "/var/lib/sealpost"

[org]
name = "Example Council"
domains = ["example.gov.uk"]
mail_host = "127.0.0.1:2526"
connector_networks = ["127.0.0.0/8"]

[smtp]
hostname = "gw.example.gov.uk"
inbound_listen = "127.0.0.1:2525"
outbound_listen = "127.0.0.1:2587"
max_message_bytes = 157286400

[outbound]
smarthost = ""

[web]
listen = "127.0.0.1:8080"
public_url = "http://127.0.0.1:8080"
`

func TestContractKeysAlone(t *testing.T) {
	c, err := Parse("sealpost.toml", []byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Outbound.MaxAge.Duration != 5*24*time.Hour || c.DKIM.Algorithm != "rsa-2048" || !c.IsOrgDomain("EXAMPLE.gov.uk") {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestTemplateParses(t *testing.T) {
	b, err := Render(TemplateData{DataDir: "/srv/sp", OrgName: "A \"quoted\" Council", Domain: "a.gov.uk", Hostname: "gw.a.gov.uk"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("init.toml", b)
	if err != nil {
		t.Fatalf("init's own file does not parse: %v\n%s", err, b)
	}
	if c.Org.Name != `A "quoted" Council` || c.DataDir != "/srv/sp" {
		t.Fatalf("%+v", c.Org)
	}
}

func TestErrorsNameKeyAndLine(t *testing.T) {
	test := func(edit func(string) string, key string, line int, msgPart string) {
		t.Helper()
		_, err := Parse("sp.toml", []byte(edit(minimal)))
		var ce *Error
		if !errors.As(err, &ce) {
			t.Fatalf("want *Error, got %v", err)
		}
		if ce.Key != key || ce.Line != line || !strings.Contains(ce.Error(), msgPart) {
			t.Errorf("got %q (key %q line %d), want key %q line %d containing %q", ce.Error(), ce.Key, ce.Line, key, line, msgPart)
		}
		if !strings.HasPrefix(ce.Error(), "sp.toml:") {
			t.Errorf("error does not name the file: %s", ce)
		}
	}
	replace := func(old, new string) func(string) string {
		return func(s string) string { return strings.Replace(s, old, new, 1) }
	}
	test(replace(`mail_host = "127.0.0.1:2526"`, `mail_host = "nohost"`), "org.mail_host", 6, "host:port")
	test(replace(`domains = ["example.gov.uk"]`, `domains = ["bad domain"]`), "org.domains", 5, "not a domain")
	test(replace(`connector_networks = ["127.0.0.0/8"]`, `connector_networks = ["10.0.0.0/33"]`), "org.connector_networks", 7, "not a network")
	test(replace(`max_message_bytes = 157286400`, `max_message_bytes = 10`), "smtp.max_message_bytes", 13, "at least")
	test(replace(`max_message_bytes = 157286400`, `max_message_bytes = "big"`), "smtp.max_message_bytes", 13, "")
	test(replace(`hostname = "gw.example.gov.uk"`, "hostname = \"gw.example.gov.uk\"\nhostnme = \"typo\""), "smtp.hostnme", 11, "unknown key")
	test(replace(`public_url = "http://127.0.0.1:8080"`, `public_url = "ftp://x"`), "web.public_url", 20, "http")
	test(replace(`[outbound]`, "[outbound]\nmax_age = \"forever\""), "outbound.max_age", 16, "duration")
	test(replace(`name = "Example Council"`, `name = "unterminated`), "org.name", 4, "newlines")
}

func TestDevValid(t *testing.T) {
	if err := Dev("/tmp/x").Validate(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(minimal))
	f.Add([]byte("[org]\ndomains = [1]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("f.toml", data)
		if err == nil && (len(c.Org.Domains) == 0 || c.Org.MailHost == "") {
			t.Fatalf("accepted a config without domains or mail host")
		}
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
	})
}

// TestTemplateListenersDoNotCollideWithDev: the file init writes starts
// beside a running dev instance.
func TestTemplateListenersDoNotCollideWithDev(t *testing.T) {
	b, err := Render(TemplateData{DataDir: "/srv/sp", OrgName: "Council", Domain: "a.gov.uk", Hostname: "gw.a.gov.uk"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := Parse("init.toml", b)
	if err != nil {
		t.Fatal(err)
	}
	dev := Dev("/tmp/dev")
	ports := map[string]bool{}
	for _, a := range []string{dev.SMTP.InboundListen, dev.SMTP.OutboundListen, dev.Web.Listen, dev.Org.MailHost, Default().Org.MailHost} {
		if _, p, err := net.SplitHostPort(a); err == nil {
			ports[p] = true
		}
	}
	for key, a := range map[string]string{"smtp.inbound_listen": c.SMTP.InboundListen, "smtp.outbound_listen": c.SMTP.OutboundListen, "web.listen": c.Web.Listen} {
		_, p, err := net.SplitHostPort(a)
		if err != nil || ports[p] {
			t.Errorf("%s = %q: the same port as dev mode (or the mail host)", key, a)
		}
	}
	if !strings.HasSuffix(c.Web.PublicURL, c.Web.Listen[strings.LastIndex(c.Web.Listen, ":"):]) {
		t.Errorf("public_url %q is not the web listener %q", c.Web.PublicURL, c.Web.Listen)
	}
}
