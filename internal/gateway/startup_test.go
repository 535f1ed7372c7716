package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"

	"sealpost/internal/config"
	"sealpost/internal/datadir"
	"sealpost/internal/testutil"
)

// TestStartFailsCleanly: a start that fails part-way (each listener in
// turn finds its port taken; a rule that does not compile) returns an
// error naming the key, closes what it opened and gives the data
// directory back, so the next start on it works. (The binary's side,
// exit status and message: e2e TestStartupFailuresAreOneLine.)
func TestStartFailsCleanly(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().String()
	dir := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfgFor := func(mutate func(*config.Config)) *config.Config {
		cfg := config.Default()
		cfg.DataDir = dir
		cfg.Org.Domains = []string{"example.gov.uk"}
		cfg.Org.MailHost = "127.0.0.1:1"
		cfg.SMTP.Hostname = "gw.example.gov.uk"
		cfg.SMTP.InboundListen, cfg.SMTP.OutboundListen, cfg.Web.Listen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		cfg.DKIM.Algorithm = "ed25519"
		cfg.Inbound.Authenticate = false // its ARC seal would want an RSA key; not what these cases test
		mutate(cfg)
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, c := range []struct {
		name, key string
		mutate    func(*config.Config)
	}{
		{"inbound", "smtp.inbound_listen", func(c *config.Config) { c.SMTP.InboundListen = taken }},
		{"outbound", "smtp.outbound_listen", func(c *config.Config) { c.SMTP.OutboundListen = taken }},
		{"web", "web.listen", func(c *config.Config) { c.Web.Listen = taken }},
		{"rule", `policy.rule "typo"`, func(c *config.Config) {
			c.Policy.Rules = append(c.Policy.Rules, config.PolicyRule{Name: "typo", When: `recipient.domian == "x"`, Action: "reject"})
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			gw, err := Start(cfgFor(c.mutate), log, &testutil.Resolver{})
			var ce *config.Error
			if gw != nil || !errors.As(err, &ce) || ce.Key != c.key {
				t.Fatalf("Start = %v, %v; want a config error on %s", gw, err, c.key)
			}
			if strings.Contains(c.key, "listen") && !strings.Contains(err.Error(), taken+": address already in use") {
				t.Fatalf("error %q does not say the address is in use", err)
			}
			if pid, err := datadir.Holder(dir); err != nil || pid != 0 {
				t.Fatalf("the data directory is still locked (by %d, %v) after the failed start", pid, err)
			}
		})
	}
	gw, err := Start(cfgFor(func(*config.Config) {}), log, &testutil.Resolver{})
	if err != nil {
		t.Fatalf("start after the failed ones: %v", err)
	}
	// While it runs, a second start on the same directory is refused.
	_, err = Start(cfgFor(func(*config.Config) {}), log, &testutil.Resolver{})
	var inUse *datadir.InUseError
	if !errors.As(err, &inUse) {
		t.Fatalf("second start on the same data directory: %v", err)
	}
	gw.Shutdown(t.Context())
}
