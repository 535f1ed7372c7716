// Package gateway wires sealpost's parts together from a configuration:
// store, spool, queue, transports, SMTP listeners and web listener. main
// and the in-process tests both start a Gateway; nothing here is global.
package gateway

import (
	"context"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sealpost/internal/api"
	"sealpost/internal/audit"
	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/console"
	"sealpost/internal/datadir"
	"sealpost/internal/deliver"
	"sealpost/internal/dns"
	"sealpost/internal/dnscheck"
	"sealpost/internal/keyring"
	"sealpost/internal/mailauth"
	"sealpost/internal/metrics"
	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/portal"
	"sealpost/internal/queue"
	"sealpost/internal/report"
	"sealpost/internal/smtpd"
	"sealpost/internal/store"
	"sealpost/internal/tlspolicy"
	"sealpost/internal/web"
)

// Gateway is a running sealpost.
type Gateway struct {
	cfg       atomic.Pointer[config.Config]
	Log       *slog.Logger
	Metrics   *metrics.Metrics
	Store     *store.Store
	Committer *store.Committer
	Queue     *queue.Queue
	SMTP      *smtpd.Server
	Web       *web.Server
	Signer    *mailauth.Signer
	Outbox    *queue.DevOutbox
	pool      *deliver.Pool
	tlsPolicy *tlspolicy.Evaluator // nil: a smarthost, the dev outbox, or a test's MX fake
	auth      *inboundAuth         // nil: inbound.authenticate off (see inbound.go)
	rules     atomic.Pointer[rules]
	Portal    *portal.Service
	Keyring   *keyring.Keyring // recipients' keys (encrypt actions, `sealpost keys`)
	Console   *console.Service
	API       *api.Service
	linkKey   []byte
	audit     *auditState
	bg        sync.WaitGroup
	tlsReport *tlsReporter

	InboundAddr, OutboundAddr, WebAddr, RedirectAddr net.Addr

	// Ops does the operator and sender actions for every surface.
	Ops *ops.Service
	// inbound checks inbound mail's content (inbound_content.go).
	inbound *inboundContent

	lock    *datadir.Lock
	spool   *queue.Spool
	control *http.Server

	cancel    context.CancelFunc
	closeOnce sync.Once
}

// NewLogger returns the logger the configuration asks for, writing to w.
func NewLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var lvl slog.Level
	lvl.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if cfg.Log.Format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// OpenStore opens the metadata store of cfg (for the CLI as well). When the
// installation key is readable, the store can append audit events;
// otherwise an append fails (ErrNoAuditKey) and is never written unlinked.
func OpenStore(cfg *config.Config) (*store.Store, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	st, err := store.OpenSQLite(cfg.Path("sealpost.db"))
	if err != nil {
		return nil, err
	}
	if master, err := readMasterKey(cfg); err == nil {
		if k, err := audit.DeriveKeys(master); err == nil {
			st.SetAuditChain(audit.Chain{Keys: k})
		}
	}
	return st, nil
}

// Start opens everything and starts the listeners. Stop it with Shutdown.
// What fails on the way is undone (listeners closed, the data directory's
// lock given up) and returned as an error that names the config key, file
// or rule involved; *config.Error where a key is to blame.
func Start(cfg *config.Config, log *slog.Logger, res deliver.Resolver) (*Gateway, error) {
	return StartWith(cfg, log, res, StartOptions{})
}

// StartOptions are the seams tests use beyond Start's.
type StartOptions struct {
	// PolicyDNS answers the outbound TLS policy's lookups (DANE, MTA-STS,
	// MX with AD bits): nil uses outbound.resolver when Start's res is nil
	// too, and turns the policy off when only res (a test's MX fake) is set.
	PolicyDNS dns.Resolver
	// MXDial replaces the dialer of MX deliveries (tests: to loopback sinks).
	MXDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// StartWith is Start with StartOptions.
func StartWith(cfg *config.Config, log *slog.Logger, res deliver.Resolver, opt StartOptions) (_ *Gateway, err error) {
	policyDNS := opt.PolicyDNS
	// g is not the named result: every "return nil, err" below would set
	// that to nil before the deferred clean-up runs.
	g := &Gateway{Log: log, Metrics: metrics.New()}
	g.cfg.Store(cfg)
	defer func() {
		if err != nil {
			g.abort()
		}
	}()
	// The lock comes before anything else touches the data directory: a
	// second gateway would otherwise sweep the first one's spool files as
	// orphans and release its leases before failing on a port.
	if g.lock, err = datadir.Acquire(cfg.DataDir); err != nil {
		var inUse *datadir.InUseError
		if errors.As(err, &inUse) {
			return nil, err
		}
		return nil, cfg.KeyError("data_dir", fmt.Sprintf("%s: %v", cfg.DataDir, err))
	}
	key, err := LoadOrCreateMasterKey(cfg.MasterKeyPath())
	if err != nil {
		if cfg.Keys.MasterKeyFile != "" {
			return nil, cfg.KeyError("keys.master_key_file", err.Error())
		}
		return nil, fmt.Errorf("the installation's key: %w", err)
	}
	if g.linkKey, err = hkdf.Key(sha256.New, key, nil, "sealpost link signing", 32); err != nil {
		return nil, err
	}
	rs, err := g.newRules(cfg)
	if err != nil {
		return nil, err
	}
	g.rules.Store(rs)
	certPath, keyPath, create := cfg.SMTP.TLSCert, cfg.SMTP.TLSKey, false
	if certPath == "" {
		certPath, keyPath, create = cfg.Path("keys", "tls-cert.pem"), cfg.Path("keys", "tls-key.pem"), true
	}
	if !create {
		if err := readable(cfg, "smtp.tls_cert", certPath, "smtp.tls_key", keyPath); err != nil {
			return nil, err
		}
	}
	tlsConfig, err := LoadOrCreateTLS(certPath, keyPath, cfg.SMTP.Hostname, create)
	if err != nil {
		if !create {
			return nil, cfg.KeyError("smtp.tls_cert", err.Error())
		}
		return nil, err
	}
	if g.Store, err = OpenStore(cfg); err != nil {
		return nil, err
	}
	for _, m := range g.Store.Migrated() {
		log.Info("schema migration applied", "version", m.Version, "name", m.Name)
	}
	if err := g.setupAudit(cfg, key); err != nil {
		return nil, err
	}
	g.Committer = store.NewCommitter(g.Store, 256)
	spool, err := queue.OpenSpool(cfg.Path("spool"), key)
	if err != nil {
		return nil, fmt.Errorf("the spool %s: %w", cfg.Path("spool"), err)
	}
	g.spool = spool
	if g.Signer, err = mailauth.LoadOrCreate(cfg.Path("keys"), cfg.DKIM.Algorithm, cfg.DKIM.Selector, log); err != nil {
		return nil, err
	}
	resGiven := res != nil
	if res == nil {
		res = systemResolver(cfg.Outbound.Resolver)
	}
	g.pool = deliver.NewPool(64, 30*time.Second)
	roots, err := rootCAs(cfg.Outbound.CAFile)
	if err != nil {
		return nil, cfg.KeyError("outbound.ca_file", err.Error())
	}
	var tlsPolicy *tlspolicy.Evaluator
	// The policy is for MX delivery: a smarthost or the dev outbox takes
	// every outbound message instead.
	if (!resGiven || policyDNS != nil) && cfg.Outbound.Smarthost == "" && !cfg.Dev {
		pres, err := policyResolver(cfg, policyDNS)
		if err != nil {
			return nil, err
		}
		if tlsPolicy, err = NewTLSPolicy(cfg, pres, g.Store, roots, log); err != nil {
			return nil, err
		}
		// The list follows reloads (Validate has parsed it already).
		started := tlsPolicy.RequireTLS
		tlsPolicy.List = func() tlspolicy.DomainList {
			l, err := tlspolicy.ParseDomainList(g.Config().Outbound.RequireTLSDomains)
			if err != nil {
				return started // never an empty list in place of a bad one
			}
			return l
		}
	}
	g.tlsPolicy = tlsPolicy
	smtpT := func(fixed, tlsMode string, sign bool) *deliver.Transport {
		t := &deliver.Transport{
			Hello: cfg.SMTP.Hostname, FixedHost: fixed, Port: "25", TLSMode: tlsMode, Resolver: res,
			ConnectTimeout: cfg.Outbound.ConnectTimeout.Duration, CommandTimeout: cfg.Outbound.CommandTimeout.Duration,
			Log: log, Pool: g.pool, RootCAs: roots, HonourTLSRequiredNo: cfg.Outbound.TLSRequiredNo == "honour",
		}
		if fixed == "" && tlsPolicy != nil {
			t.Policy, t.DialContext = tlsPolicy, opt.MXDial
		}
		if sign && g.Signer.Enabled() {
			t.Signer = g.Signer
			t.SignDomain = func(headerFrom string) string {
				if d := domainOf(headerFrom); d != "" && g.Config().IsOrgDomain(d) {
					return d
				}
				return ""
			}
		}
		return t
	}
	transports := map[string]queue.Transport{}
	if cfg.Dev {
		g.Outbox = &queue.DevOutbox{Dir: cfg.Path("dev-outbox"), Key: key, Store: g.Store, Committer: g.Committer,
			Sign: smtpT("", deliver.TLSOpportunistic, true).Signature}
		transports[queue.RouteOutbound] = g.Outbox
		if cfg.Org.MailHost == "" {
			transports[queue.RouteMailHost] = g.Outbox
		}
	}
	if transports[queue.RouteMailHost] == nil {
		transports[queue.RouteMailHost] = smtpT(cfg.Org.MailHost, cfg.Outbound.MailHostTLS, false)
	}
	if transports[queue.RouteOutbound] == nil {
		transports[queue.RouteOutbound] = tlsrptTransport{Transport: smtpT(cfg.Outbound.Smarthost, deliver.TLSOpportunistic, true), g: g}
	}
	g.Portal = &portal.Service{Store: g.Store, Recorder: g.audit.recorder, Dir: cfg.Path("portal"), Config: g.Config, Log: log,
		Limiter: portal.NewIPLimiter(30, 10*time.Minute), Passkeys: portal.NewPasskeys(cfg.Web.PublicURL, cfg.Org.Name)}
	if g.Portal.KEK, err = hkdf.Key(sha256.New, key, nil, "sealpost portal key wrapping", 32); err != nil {
		return nil, err
	}
	if g.Portal.MACKey, err = hkdf.Key(sha256.New, key, nil, "sealpost portal tokens", 32); err != nil {
		return nil, err
	}
	g.Portal.Submit = func(ctx context.Context, from string, to []string, subject string, write func(io.Writer) error) error {
		p, err := g.Queue.Compose("notice", from, to, subject, write)
		if err != nil {
			return err
		}
		return g.Queue.Submit(ctx, p)
	}
	smimeT, err := newSMIMETransport(cfg, transports[queue.RouteOutbound], g.Portal, func() bool { return g.Config().Portal.Enabled },
		g.audit.recorder.Record, log)
	if err != nil {
		return nil, err
	}
	g.Keyring = NewKeyring(cfg, g.Store)
	smimeT.addKeyring(g.Keyring)
	encT, err := g.encryptTransports(cfg, transports, smimeT)
	if err != nil {
		return nil, err
	}
	reg, err := transportRegistry(cfg, actionTransports{outbound: transports[queue.RouteOutbound], portal: g.Portal, smime: smimeT,
		encrypt: encT[queue.ActionEncrypt], pgp: encT[queue.ActionPGP]})
	if err != nil {
		return nil, fmt.Errorf("transports: %w", err)
	}
	for r, t := range reg.Routes() {
		transports[r] = t
	}
	// Mail already queued for the portal, for S/MIME or OpenPGP is sent on
	// even after the action is switched off.
	transports[queue.RoutePortal] = g.Portal
	transports[queue.RouteSMIME] = smimeT
	for r, t := range encT {
		transports[r] = t
	}
	route := func(rcpt string) string {
		if i := strings.LastIndexByte(rcpt, '@'); i >= 0 && g.Config().IsOrgDomain(strings.ToLower(rcpt[i+1:])) {
			return queue.RouteMailHost
		}
		return queue.RouteOutbound
	}
	g.Queue = queue.New(queue.Options{
		Hostname: cfg.SMTP.Hostname, Workers: cfg.Outbound.Workers,
		RetryInitial: cfg.Outbound.RetryInitial.Duration, RetryMax: cfg.Outbound.RetryMax.Duration,
		MaxAge: cfg.Outbound.MaxAge.Duration, PollInterval: cfg.Queue.PollInterval.Duration,
		KeepDelivered: cfg.Queue.KeepDelivered.Duration,
	}, g.Store, g.Committer, spool, route, transports, log, g.Metrics)
	g.Ops = &ops.Service{Queue: g.Queue, Decisions: g.Store, Audit: g.audit.recorder.Record, Metrics: g.Metrics, Log: log}
	txt, _ := res.(txtResolver)
	g.tlsReport = newTLSReporter(g.Store, g.Queue, g.Config, txt, roots, log)
	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	if err := g.Queue.Start(ctx); err != nil {
		return nil, err
	}
	g.Metrics.Registry.MustRegister(queueDepth(g.Store))
	g.Metrics.CountDecisions((&report.Running{Store: g.Store}).Totals)
	g.bg.Add(3)
	go func() {
		defer g.bg.Done()
		g.tlsReport.run(ctx)
	}()
	go func() {
		defer g.bg.Done()
		g.expireHolds(ctx)
	}()
	if tlsPolicy != nil && tlsPolicy.STS != nil {
		g.bg.Add(1)
		go func() {
			defer g.bg.Done()
			tlsPolicy.STS.Run(ctx, 10*time.Minute)
		}()
	}
	go func() {
		defer g.bg.Done()
		g.checkpoints(ctx)
	}()

	g.SMTP = smtpd.New(smtpOptions(cfg), newBackend(g), tlsConfig, g.Metrics, log)
	if !cfg.DLP.Enabled {
		log.Warn("dlp.enabled = false: outbound mail is neither inspected nor protected by policy")
	}
	g.inbound = newInboundContent(g) // the inbound content checks (accept.go runs them)
	if err := g.setupInbound(cfg); err != nil {
		return nil, err
	}
	if cfg.SMTP.InboundListen != "" {
		if g.InboundAddr, err = g.SMTP.Listen(smtpd.RoleInbound, cfg.SMTP.InboundListen); err != nil {
			return nil, listenError(cfg, "smtp.inbound_listen", cfg.SMTP.InboundListen, err)
		}
	}
	if cfg.SMTP.OutboundListen != "" {
		if g.OutboundAddr, err = g.SMTP.Listen(smtpd.RoleOutbound, cfg.SMTP.OutboundListen); err != nil {
			return nil, listenError(cfg, "smtp.outbound_listen", cfg.SMTP.OutboundListen, err)
		}
	}
	g.Web = &web.Server{OrgName: cfg.Org.Name, Metrics: g.Metrics, Outbox: g.Outbox, Mail: portal.MailReader{}, Log: log, Store: g.Store, Holds: holds{g}, Config: g.Config}
	if g.Web.Certs, err = webCertificates(cfg); err != nil {
		return nil, err
	}
	if cfg.Portal.Enabled {
		g.Web.Mount = g.Portal.Routes
	}
	g.Web.MTASTS = func() string { return MTASTSPolicy(g.Config()) }
	g.Web.Brand = g.Portal.Brand
	consoleKey, err := hkdf.Key(sha256.New, key, nil, "sealpost console", 32)
	if err != nil {
		return nil, err
	}
	g.Console = &console.Service{Store: g.Store, Recorder: g.audit.recorder, Queue: g.Queue, Ops: g.Ops, Config: g.Config, Log: log, Key: consoleKey,
		Limiter: auth.NewLimiter(5, 15*time.Minute, 15*time.Minute), Dev: cfg.Dev,
		Available: func(a policy.Action) bool { return available(g.Config())(a) }}
	g.API = &api.Service{Store: g.Store, Queue: g.Queue, Ops: g.Ops, Log: log, AuditVerify: g.verifier, Recorder: g.audit.recorder,
		Rules: func() []policy.Rule { return g.rules.Load().policy.Rules() },
		PolicyTest: func(ctx context.Context, data []byte, to []string) (*policy.Decision, error) {
			return testMessage(ctx, g.rules.Load().outbound, data, "", to)
		},
		DNSRecords: func() ([]dnscheck.Record, error) {
			var out []dnscheck.Record
			for _, d := range g.Config().Org.Domains {
				s, err := DNSSettings(g.Config(), g.Signer, d)
				if err != nil {
					return nil, err
				}
				out = append(out, dnscheck.Records(s)...)
			}
			return out, nil
		}}
	g.Console.Evidence = g.messageEvidence
	if g.tlsPolicy != nil {
		g.Console.TLSCheck = g.tlsCheck
	}
	g.Console.Rules, g.Console.PolicyTest, g.Console.DNSRecords = g.API.Rules, g.API.PolicyTest, g.API.DNSRecords
	g.Console.Keyring = g.Keyring
	g.Web.TokenOK = g.API.TokenValid
	portalRoutes := g.Web.Mount
	g.Web.Mount = func(mux *http.ServeMux) {
		if portalRoutes != nil {
			portalRoutes(mux)
		}
		g.Console.Routes(mux)
		g.API.Routes(mux)
		if cfg.Encryption.ServeWKD {
			wkd := &keyring.WKDHandler{Keyring: g.Keyring, IsOrgDomain: func(d string) bool { return g.Config().IsOrgDomain(d) }, Log: log}
			wkd.Mount(mux)
		}
	}
	if cfg.Web.Listen != "" {
		if g.WebAddr, err = g.Web.Serve(cfg.Web.Listen); err != nil {
			return nil, listenError(cfg, "web.listen", cfg.Web.Listen, err)
		}
		warnPlainHTTPS(cfg, log)
	}
	if cfg.Web.RedirectListen != "" {
		if g.RedirectAddr, err = g.Web.ServeRedirect(cfg.Web.RedirectListen, cfg.Web.PublicURL); err != nil {
			return nil, fmt.Errorf("web redirect listener on %s: %w", cfg.Web.RedirectListen, err)
		}
	}
	if err := g.serveControl(cfg); err != nil {
		return nil, err
	}
	log.Info("sealpost started", "inbound", addrString(g.InboundAddr), "outbound", addrString(g.OutboundAddr), "web", addrString(g.WebAddr), "data", cfg.DataDir, "dev", cfg.Dev)
	return g, nil
}

// rootCAs is the system's certificate pool plus the CAs in file.
func rootCAs(file string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if file == "" {
		return pool, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return strings.ToLower(addr[i+1:])
	}
	return ""
}

func addrString(a net.Addr) string {
	if a == nil {
		return "off"
	}
	return a.String()
}

// Config returns the configuration in force.
func (g *Gateway) Config() *config.Config { return g.cfg.Load() }

// Reload applies a new configuration (SIGHUP): policy, detectors and the
// settings read per message or session. Listen addresses, the data
// directory and keys are fixed until restart. A policy that does not
// compile is refused and the running configuration kept.
func (g *Gateway) Reload(cfg *config.Config) error {
	old := g.Config()
	cfg.DataDir = old.DataDir
	rs, err := g.newRules(cfg)
	if err != nil {
		return err
	}
	if err := g.reloadWebTLS(old, cfg); err != nil {
		return err
	}
	g.cfg.Store(cfg)
	g.rules.Store(rs)
	g.SMTP.SetOptions(smtpOptions(cfg))
	g.Log.Info("configuration reloaded", "file", cfg.File, "policy_rules", len(rs.policy.Rules()))
	return nil
}

// Shutdown stops accepting, lets open SMTP sessions finish (up to ctx),
// stops the delivery workers and closes the store.
func (g *Gateway) Shutdown(ctx context.Context) {
	g.stopListeners(ctx)
	g.closeAll()
	g.Log.Info("sealpost stopped")
}

// abort undoes a start that failed part-way: only what was opened is
// closed, and nothing waits for sessions (none were served).
func (g *Gateway) abort() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	g.stopListeners(ctx)
	g.closeAll()
}

func (g *Gateway) stopListeners(ctx context.Context) {
	if g.control != nil {
		g.control.Close()
	}
	if g.SMTP != nil {
		g.SMTP.Shutdown(ctx)
	}
	if g.Web != nil {
		g.Web.Shutdown(ctx)
	}
}

func (g *Gateway) closeAll() { g.closeOnce.Do(g.close) }

// close releases what start opened, in reverse order; every field may be
// nil when start failed before reaching it. The data directory's lock goes
// last, once nothing of this process touches the directory any more.
func (g *Gateway) close() {
	if g.cancel != nil {
		g.cancel()
		g.bg.Wait()
	}
	if g.Queue != nil {
		g.Queue.Wait()
	}
	if g.spool != nil {
		g.spool.Close()
	}
	if g.pool != nil {
		g.pool.Close()
	}
	if g.Committer != nil {
		g.Committer.Close()
	}
	g.closeAudit()
	if g.Store != nil {
		g.Store.Close()
	}
	if g.lock != nil {
		if err := g.lock.Release(); err != nil {
			g.Log.Warn("releasing the data directory lock failed", "err", err)
		}
	}
}
