// Package config reads sealpost's TOML configuration file, fills in the
// documented defaults and validates it. Every error names the key and, where
// the key came from a file, the file and line, so an operator can fix it
// without reading code.
//
// A file that sets only the keys of the outside contract (INTERFACE.md) is
// valid; every other key has a default chosen for a small public body running
// the embedded store on one machine.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"sealpost/internal/tlspolicy"
)

// Config is the whole configuration. Field comments are the documentation
// `sealpost init` writes into a new file (see Template).
type Config struct {
	DataDir  string   `toml:"data_dir"`
	Org      Org      `toml:"org"`
	SMTP     SMTP     `toml:"smtp"`
	Outbound Outbound `toml:"outbound"`
	Queue    Queue    `toml:"queue"`
	DKIM     DKIM     `toml:"dkim"`
	Web      Web      `toml:"web"`
	Log      Log      `toml:"log"`
	DLP      DLP      `toml:"dlp"`
	Policy   Policy   `toml:"policy"`
	Portal   Portal   `toml:"portal"`
	DNS      DNS      `toml:"dns"`
	Audit    Audit    `toml:"audit"`
	Keys     Keys     `toml:"keys"`
	Inbound  Inbound  `toml:"inbound"`
	TLSRPT   TLSRPT   `toml:"tlsrpt"`
	SMIME    SMIME    `toml:"smime"`

	Encryption Encryption `toml:"encryption"`

	// Dev is set by `serve --dev`: outbound mail (and inbound mail when no
	// mail host is configured) is captured in the dev outbox.
	Dev bool `toml:"-"`
	// File is the path the configuration was read from, "" for defaults only.
	File string `toml:"-"`
	// ConnectorNets is Org.ConnectorNetworks parsed.
	ConnectorNets []netip.Prefix `toml:"-"`
}

type Org struct {
	Name              string   `toml:"name"`
	Domains           []string `toml:"domains"`
	MailHost          string   `toml:"mail_host"`
	ConnectorNetworks []string `toml:"connector_networks"`
}

type SMTP struct {
	Hostname         string   `toml:"hostname"`
	InboundListen    string   `toml:"inbound_listen"`
	OutboundListen   string   `toml:"outbound_listen"`
	MaxMessageBytes  int64    `toml:"max_message_bytes"`
	MaxRecipients    int      `toml:"max_recipients"`
	MaxSessions      int      `toml:"max_sessions"`
	MaxSessionsPerIP int      `toml:"max_sessions_per_ip"`
	MaxLineLength    int      `toml:"max_line_length"`
	CommandTimeout   Duration `toml:"command_timeout"`
	DataTimeout      Duration `toml:"data_timeout"`
	SessionTimeout   Duration `toml:"session_timeout"`
	Banner           string   `toml:"banner"`
	TLSCert          string   `toml:"tls_cert"`
	TLSKey           string   `toml:"tls_key"`
}

type Outbound struct {
	Smarthost      string   `toml:"smarthost"`
	Workers        int      `toml:"workers"`
	ConnectTimeout Duration `toml:"connect_timeout"`
	CommandTimeout Duration `toml:"command_timeout"`
	RetryInitial   Duration `toml:"retry_initial"`
	RetryMax       Duration `toml:"retry_max"`
	MaxAge         Duration `toml:"max_age"`
	Resolver       string   `toml:"resolver"`
	MailHostTLS    string   `toml:"mail_host_tls"`
	CAFile         string   `toml:"ca_file"`
	// TLSRequiredNo is what a message's "TLS-Required: No" header (RFC
	// 8689 §5) does: "ignore" (default) or "honour" (it may lower the
	// receiver's MTA-STS/DANE requirement, never our require-tls).
	TLSRequiredNo string `toml:"tls_required_no"`
	// RequireTLSDomains: recipient domains that get mail only over
	// WebPKI-verified TLS ("*.gov.uk", "nhs.net", "!exception.gov.uk").
	RequireTLSDomains []string `toml:"require_tls_domains"`
	// DNSSECTrust: believe the AD bit of outbound.resolver's answers (DANE
	// needs it). Set only when that resolver validates and the path to it
	// cannot be tampered with (a local unbound).
	DNSSECTrust bool `toml:"dnssec_trust"`
	// MTASTS: look up and honour recipients' MTA-STS policies (RFC 8461).
	MTASTS bool `toml:"mta_sts"`
}

type Queue struct {
	KeepDelivered Duration `toml:"keep_delivered"`
	PollInterval  Duration `toml:"poll_interval"`
}

type DKIM struct {
	Selector  string `toml:"selector"`
	Algorithm string `toml:"algorithm"`
}

// Keys says where key material lives.
type Keys struct {
	// MasterKeyFile holds the 32-byte at-rest key. Empty: data_dir/keys/master.key.
	MasterKeyFile string `toml:"master_key_file"`
}

// MasterKeyPath is the file of the at-rest key.
func (c *Config) MasterKeyPath() string {
	if c.Keys.MasterKeyFile != "" {
		return c.Keys.MasterKeyFile
	}
	return c.Path("keys", "master.key")
}

// DLP configures data-loss prevention.
type DLP struct {
	// Enabled: outbound mail is inspected and the policy applied. Off, mail
	// leaves as it came (only for measuring or for inbound-only gateways).
	Enabled bool        `toml:"enabled"`
	Custom  []DLPCustom `toml:"custom"`
	// Labels maps Microsoft Purview sensitivity labels (their name or id,
	// from the msip_labels header) to a classification marking.
	Labels map[string]string `toml:"labels"`
	// MaxAttachmentBytes bounds how much of one archive, Office document
	// or PDF is held in memory to be read; larger ones are unscannable.
	MaxAttachmentBytes int64 `toml:"max_attachment_bytes"`
	// VocalinkValacdosFile and VocalinkScsubtabFile, when set, are a newer
	// modulus weight table and sort code substitution table as Vocalink
	// publishes them, used instead of the built-in ones without a rebuild.
	VocalinkValacdosFile string `toml:"vocalink_valacdos_file"`
	VocalinkScsubtabFile string `toml:"vocalink_scsubtab_file"`
}

// Policy configures what happens to outbound mail (see package policy).
type Policy struct {
	BuiltinRules        bool         `toml:"builtin_rules"`
	Disable             []string     `toml:"disable"`
	SenderKeywords      []string     `toml:"sender_keywords"`
	TLSAssuredDomains   []string     `toml:"tls_assured_domains"`
	PartnerDomains      []string     `toml:"partner_domains"`
	BulkThreshold       int          `toml:"bulk_threshold"`
	BulkAction          string       `toml:"bulk_action"`
	HoldTimeout         Duration     `toml:"hold_timeout"`
	QuarantineRetention Duration     `toml:"quarantine_retention"`
	Rules               []PolicyRule `toml:"rule"`
}

// Audit configures the audit log.
type Audit struct {
	// Retention: events older than this are removed (the chain stays
	// verifiable from the last removed event).
	Retention Duration `toml:"retention"`
	// WitnessFile gets a copy of every signed checkpoint, so that deleting
	// events and checkpoints from the database is found. Empty:
	// data_dir/audit-witness.log; better on another volume.
	WitnessFile string `toml:"witness_file"`
}

// AuditWitnessPath is the audit witness file.
func (c *Config) AuditWitnessPath() string {
	if c.Audit.WitnessFile != "" {
		return c.Audit.WitnessFile
	}
	return c.Path("audit-witness.log")
}

// DNS holds the choices behind the records `sealpost dns records` prints.
type DNS struct {
	SPFExtra    []string `toml:"spf_extra"`
	DMARCPolicy string   `toml:"dmarc_policy"`
	DMARCRUA    string   `toml:"dmarc_rua"`
	TLSRPTRUA   string   `toml:"tls_rpt_rua"`
	MTASTSMode  string   `toml:"mta_sts_mode"`
}

// Portal configures the secure portal.
type Portal struct {
	Enabled       bool     `toml:"enabled"`
	Expiry        Duration `toml:"expiry"`
	MaxExpiry     Duration `toml:"max_expiry"`
	Session       Duration `toml:"session"`
	Remember      Duration `toml:"remember"`
	CodeValidity  Duration `toml:"code_validity"`
	CodeAttempts  int      `toml:"code_attempts"`
	CodesPerHour  int      `toml:"codes_per_hour"`
	HideSubject   bool     `toml:"hide_subject"`
	LinkInNotice  bool     `toml:"link_in_notice"`
	NoLinkDomains []string `toml:"no_link_domains"`
	NoticeFrom    string   `toml:"notice_from"`
	BrandColour   string   `toml:"brand_colour"`
	LogoFile      string   `toml:"logo_file"`
	MaxReplyBytes int64    `toml:"max_reply_bytes"`
}

// PolicyRule is one [[policy.rule]].
type PolicyRule struct {
	Name   string `toml:"name"`
	When   string `toml:"when"`
	Action string `toml:"action"`
	Reason string `toml:"reason"`
	// Line is where the rule's table starts in the file.
	Line int `toml:"-"`
}

// DLPCustom is a detector of the organisation's own: keywords (literal,
// case-insensitive, whole words or phrases) and RE2 patterns.
type DLPCustom struct {
	Name     string   `toml:"name"`
	Keywords []string `toml:"keywords"`
	Patterns []string `toml:"patterns"`
}

type Log struct {
	Level  string `toml:"level"`
	Format string `toml:"format"`
}

// Error is a configuration error tied to a key and, when known, a file line.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	}
	if e.Key != "" {
		fmt.Fprintf(&b, "%s: ", e.Key)
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Duration is a time.Duration written as "30s", "15m", "12h" or "5d".
type Duration struct{ time.Duration }

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(FormatDuration(d.Duration)), nil }

// ParseDuration accepts Go durations and a whole number of days ("5d").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("invalid duration %q: want e.g. 30s, 15m, 12h or 5d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("invalid duration %q: want e.g. 30s, 15m, 12h or 5d", s)
	}
	return v, nil
}

// FormatDuration writes whole days as "Nd", everything else as Go does.
func FormatDuration(d time.Duration) string {
	if d > 0 && d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Default returns the configuration used when a key is not set.
func Default() *Config {
	return &Config{
		TLSRPT:  defaultTLSRPT(),
		DataDir: "/var/lib/sealpost",
		Inbound: defaultInbound(),
		Org: Org{
			Name:              "Example Council",
			Domains:           nil,
			ConnectorNetworks: []string{"127.0.0.0/8", "::1/128"},
		},
		SMTP: SMTP{
			Hostname:         "",
			InboundListen:    "127.0.0.1:2525",
			OutboundListen:   "127.0.0.1:2587",
			MaxMessageBytes:  150 << 20,
			MaxRecipients:    500,
			MaxSessions:      2000,
			MaxSessionsPerIP: 50,
			MaxLineLength:    4096,
			CommandTimeout:   Duration{5 * time.Minute},
			DataTimeout:      Duration{10 * time.Minute},
			SessionTimeout:   Duration{30 * time.Minute},
		},
		Outbound: Outbound{
			Workers:        64,
			ConnectTimeout: Duration{30 * time.Second},
			CommandTimeout: Duration{5 * time.Minute},
			RetryInitial:   Duration{5 * time.Minute},
			RetryMax:       Duration{4 * time.Hour},
			MaxAge:         Duration{5 * 24 * time.Hour},
			MailHostTLS:    "opportunistic",
			TLSRequiredNo:  "ignore",
			MTASTS:         true,
		},
		Queue: Queue{
			KeepDelivered: Duration{7 * 24 * time.Hour},
			PollInterval:  Duration{5 * time.Second},
		},
		DKIM: DKIM{
			Algorithm: "rsa-2048",
		},
		Web: Web{
			Listen:          "127.0.0.1:8080",
			PublicURL:       "http://127.0.0.1:8080",
			MetricsNetworks: []string{"127.0.0.0/8", "::1/128"},
		},
		Log:   Log{Level: "info", Format: "json"},
		DLP:   DLP{Enabled: true, MaxAttachmentBytes: 64 << 20},
		Audit: Audit{Retention: Duration{6 * 365 * 24 * time.Hour}},
		DNS: DNS{DMARCPolicy: "reject", DMARCRUA: "mailto:dmarc-rua@dmarc.service.gov.uk",
			TLSRPTRUA: "mailto:tls-rua@mailcheck.service.ncsc.gov.uk", MTASTSMode: "enforce"},
		Portal: Portal{
			Enabled: true, Expiry: Duration{30 * 24 * time.Hour}, MaxExpiry: Duration{365 * 24 * time.Hour},
			Session: Duration{time.Hour}, Remember: Duration{30 * 24 * time.Hour},
			CodeValidity: Duration{15 * time.Minute}, CodeAttempts: 5, CodesPerHour: 5,
			LinkInNotice: true, BrandColour: "#1d4f91", MaxReplyBytes: 25 << 20,
		},
		Encryption: defaultEncryption(),
		Policy: Policy{
			BuiltinRules:        true,
			SenderKeywords:      []string{"[secure]", "[encrypt]"},
			BulkThreshold:       10,
			BulkAction:          "hold",
			HoldTimeout:         Duration{72 * time.Hour},
			QuarantineRetention: Duration{30 * 24 * time.Hour},
		},
	}
}

// Dev returns the configuration of `serve --dev`: no file, data under dataDir,
// loopback listeners, a test domain and outbound mail captured.
func Dev(dataDir string) *Config {
	c := Default()
	c.Dev = true
	c.DataDir = dataDir
	c.Org.Name = "Dev Council"
	c.Org.Domains = []string{"example.gov.uk"}
	c.SMTP.Hostname = "localhost"
	c.Outbound.RetryInitial = Duration{30 * time.Second}
	c.Log.Format = "text"
	// Dev mode runs where there is often no DNS to ask; inbound
	// authentication is for a real MX (and `sealpost inbound test`).
	c.Inbound.Authenticate = false
	return c
}

// Load reads and validates the file at path. Keys not in the file keep their
// defaults. Unknown keys are errors: a typo must not silently change nothing.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read config: %v", err)}
	}
	return Parse(path, data)
}

// Parse decodes data (read from file, for messages) over the defaults.
func Parse(file string, data []byte) (*Config, error) {
	c := Default()
	c.File = file
	md, err := toml.Decode(string(data), c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, &Error{File: file, Line: pe.Position.Line, Key: pe.LastKey, Msg: pe.Message}
		}
		// Type mismatches come as text: toml: line N (last key "k"): msg
		if m := typeErrRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Error{File: file, Line: line, Key: m[2], Msg: m[3]}
		}
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if undec := md.Undecoded(); len(undec) > 0 {
		k := undec[0].String()
		return nil, &Error{File: file, Line: keyLine(data, k), Key: k, Msg: "unknown key (see `sealpost init` for the documented keys)"}
	}
	for i := range c.Policy.Rules {
		c.Policy.Rules[i].Line = tableLine(data, "policy.rule", i)
	}
	if err := c.validate(); err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.Line == 0 {
			ce.Line = keyLine(data, ce.Key)
		}
		return nil, err
	}
	return c, nil
}

var builtinDetector = map[string]bool{"uk-nino": true, "uk-nhs-number": true, "payment-card": true, "iban": true, "uk-sort-code-account": true,
	"uk-passport": true, "uk-driving-licence": true, "uk-postcode": true, "uk-vat": true, "private-key": true, "unscannable": true}

var brandColour = regexp.MustCompile(`^#[0-9a-fA-F]{6}$`)

// contrastWithWhite is the WCAG contrast ratio of white on colour #rrggbb.
func contrastWithWhite(hex string) float64 {
	lin := func(s string) float64 {
		v, _ := strconv.ParseUint(s, 16, 8)
		c := float64(v) / 255
		if c <= 0.03928 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	l := 0.2126*lin(hex[1:3]) + 0.7152*lin(hex[3:5]) + 0.0722*lin(hex[5:7])
	return 1.05 / (l + 0.05)
}

var typeErrRe = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]+)"\): (.*)$`)

// Validate checks a configuration built in code (such as Dev).
func (c *Config) Validate() error { return c.validate() }

func (c *Config) errf(key, format string, args ...any) error {
	return &Error{File: c.File, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return c.errf("data_dir", "must be set")
	}
	if !filepath.IsAbs(c.DataDir) && c.File != "" {
		c.DataDir = filepath.Join(filepath.Dir(c.File), c.DataDir)
	}
	if len(c.Org.Domains) == 0 {
		return c.errf("org.domains", "at least one domain is needed: mail for these domains is inbound, mail from them outbound")
	}
	for i, d := range c.Org.Domains {
		d = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(d), "."))
		if !validDomain(d) {
			return c.errf("org.domains", "%q is not a domain name", c.Org.Domains[i])
		}
		c.Org.Domains[i] = d
	}
	if c.Org.MailHost == "" && !c.Dev {
		return c.errf("org.mail_host", "must be set: it is where inbound mail goes (e.g. \"127.0.0.1:2526\", or your provider's inbound host:25)")
	}
	if c.Org.MailHost != "" {
		if err := checkHostPort(c.Org.MailHost); err != nil {
			return c.errf("org.mail_host", "%v", err)
		}
	}
	c.ConnectorNets = c.ConnectorNets[:0]
	for _, n := range c.Org.ConnectorNetworks {
		p, err := netip.ParsePrefix(strings.TrimSpace(n))
		if err != nil {
			a, aerr := netip.ParseAddr(strings.TrimSpace(n))
			if aerr != nil {
				return c.errf("org.connector_networks", "%q is not a network (want e.g. 192.0.2.0/24 or 2001:db8::/32)", n)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		c.ConnectorNets = append(c.ConnectorNets, p.Masked())
	}
	if c.SMTP.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		c.SMTP.Hostname = h
	}
	if !validDomain(strings.ToLower(c.SMTP.Hostname)) {
		return c.errf("smtp.hostname", "%q is not a host name", c.SMTP.Hostname)
	}
	for key, v := range map[string]string{"smtp.inbound_listen": c.SMTP.InboundListen, "smtp.outbound_listen": c.SMTP.OutboundListen, "web.listen": c.Web.Listen} {
		if v == "" {
			continue // an empty listen address turns that listener off
		}
		if err := checkListen(v); err != nil {
			return c.errf(key, "%v", err)
		}
	}
	if c.SMTP.MaxMessageBytes < 1024 {
		return c.errf("smtp.max_message_bytes", "must be at least 1024")
	}
	positive := map[string]int{
		"smtp.max_recipients":      c.SMTP.MaxRecipients,
		"smtp.max_sessions":        c.SMTP.MaxSessions,
		"smtp.max_sessions_per_ip": c.SMTP.MaxSessionsPerIP,
		"outbound.workers":         c.Outbound.Workers,
	}
	for k, v := range positive {
		if v <= 0 {
			return c.errf(k, "must be a positive number")
		}
	}
	if c.SMTP.MaxLineLength < 1000 {
		return c.errf("smtp.max_line_length", "must be at least 1000 (RFC 5321 §4.5.3.1.6)")
	}
	for _, r := range c.SMTP.Banner {
		if r < ' ' || r > '~' {
			return c.errf("smtp.banner", "printable ASCII only")
		}
	}
	if len(c.SMTP.Banner) > 200 {
		return c.errf("smtp.banner", "at most 200 characters")
	}
	if (c.SMTP.TLSCert == "") != (c.SMTP.TLSKey == "") {
		return c.errf("smtp.tls_cert", "smtp.tls_cert and smtp.tls_key go together")
	}
	for k, d := range map[string]time.Duration{
		"smtp.command_timeout": c.SMTP.CommandTimeout.Duration, "smtp.data_timeout": c.SMTP.DataTimeout.Duration,
		"smtp.session_timeout": c.SMTP.SessionTimeout.Duration, "outbound.connect_timeout": c.Outbound.ConnectTimeout.Duration,
		"outbound.command_timeout": c.Outbound.CommandTimeout.Duration, "outbound.retry_initial": c.Outbound.RetryInitial.Duration,
		"outbound.retry_max": c.Outbound.RetryMax.Duration, "outbound.max_age": c.Outbound.MaxAge.Duration,
		"queue.poll_interval": c.Queue.PollInterval.Duration,
	} {
		if d <= 0 {
			return c.errf(k, "must be a positive duration")
		}
	}
	if c.Outbound.Smarthost != "" {
		if err := checkHostPort(c.Outbound.Smarthost); err != nil {
			return c.errf("outbound.smarthost", "%v", err)
		}
	}
	if c.Outbound.Resolver != "" {
		if err := checkHostPort(c.Outbound.Resolver); err != nil {
			return c.errf("outbound.resolver", "%v", err)
		}
	}
	if c.Outbound.CAFile != "" {
		if _, err := os.Stat(c.Outbound.CAFile); err != nil {
			return c.errf("outbound.ca_file", "%v", err)
		}
	}
	if _, err := tlspolicy.ParseDomainList(c.Outbound.RequireTLSDomains); err != nil {
		return c.errf("outbound.require_tls_domains", "%v", err)
	}
	switch c.Outbound.MailHostTLS {
	case "opportunistic", "none", "required":
	default:
		return c.errf("outbound.mail_host_tls", "%q: want opportunistic, required or none", c.Outbound.MailHostTLS)
	}
	switch c.Outbound.TLSRequiredNo {
	case "ignore", "honour":
	default:
		return c.errf("outbound.tls_required_no", "%q: want ignore or honour", c.Outbound.TLSRequiredNo)
	}
	switch c.DKIM.Algorithm {
	case "rsa-2048", "rsa-3072", "ed25519", "rsa-2048+ed25519", "off":
	default:
		return c.errf("dkim.algorithm", "%q: want rsa-2048, rsa-3072, ed25519, rsa-2048+ed25519 or off", c.DKIM.Algorithm)
	}
	if c.DKIM.Selector != "" && !validLabel(c.DKIM.Selector) {
		return c.errf("dkim.selector", "%q is not a DNS label", c.DKIM.Selector)
	}
	if k := c.Keys.MasterKeyFile; k != "" && !filepath.IsAbs(k) {
		return c.errf("keys.master_key_file", "%q: give an absolute path", k)
	}
	if c.Web.PublicURL == "" || !(strings.HasPrefix(c.Web.PublicURL, "http://") || strings.HasPrefix(c.Web.PublicURL, "https://")) {
		return c.errf("web.public_url", "%q: want an http:// or https:// URL", c.Web.PublicURL)
	}
	c.Web.PublicURL = strings.TrimSuffix(c.Web.PublicURL, "/")
	if err := c.validateInbound(); err != nil {
		return err
	}
	if err := c.validateWeb(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, d := range c.DLP.Custom {
		key := fmt.Sprintf("dlp.custom[%d]", i)
		if d.Name == "" || !validLabel(strings.ReplaceAll(d.Name, ".", "-")) {
			return c.errf(key+".name", "%q: a name of letters, digits and hyphens is needed (findings report it)", d.Name)
		}
		if seen[d.Name] || builtinDetector[d.Name] {
			return c.errf(key+".name", "%q is already a detector's name", d.Name)
		}
		seen[d.Name] = true
		if len(d.Keywords) == 0 && len(d.Patterns) == 0 {
			return c.errf(key, "detector %q has neither keywords nor patterns", d.Name)
		}
		for _, p := range d.Patterns {
			if _, err := regexp.Compile(p); err != nil {
				return c.errf(key+".patterns", "detector %q: %v", d.Name, err)
			}
		}
	}
	if c.DLP.MaxAttachmentBytes < 1<<20 {
		return c.errf("dlp.max_attachment_bytes", "must be at least 1048576 (1 MiB)")
	}
	for k, v := range c.DLP.Labels {
		switch v {
		case "OFFICIAL", "OFFICIAL-SENSITIVE":
		default:
			return c.errf("dlp.labels", "label %q maps to %q: want OFFICIAL or OFFICIAL-SENSITIVE", k, v)
		}
	}
	for i, k := range c.Policy.SenderKeywords {
		if strings.TrimSpace(k) == "" || len(k) > 64 {
			return c.errf("policy.sender_keywords", "keyword %d is empty or longer than 64 characters", i+1)
		}
	}
	for key, list := range map[string][]string{"policy.tls_assured_domains": c.Policy.TLSAssuredDomains, "policy.partner_domains": c.Policy.PartnerDomains} {
		for i, d := range list {
			d = strings.ToLower(strings.TrimSpace(d))
			if !validDomain(strings.TrimPrefix(d, ".")) {
				return c.errf(key, "%q is not a domain name", d)
			}
			list[i] = d
		}
	}
	switch c.Policy.BulkAction {
	case "hold", "split":
	default:
		return c.errf("policy.bulk_action", "%q: want hold or split", c.Policy.BulkAction)
	}
	if c.Policy.BulkThreshold < 0 {
		return c.errf("policy.bulk_threshold", "must be 0 (off) or more")
	}
	for k, d := range map[string]time.Duration{"policy.hold_timeout": c.Policy.HoldTimeout.Duration, "policy.quarantine_retention": c.Policy.QuarantineRetention.Duration} {
		if d <= 0 {
			return c.errf(k, "must be a positive duration")
		}
	}
	for i, r := range c.Policy.Rules {
		if r.Name == "" {
			return &Error{File: c.File, Line: r.Line, Key: fmt.Sprintf("policy.rule[%d].name", i), Msg: "every rule needs a name"}
		}
	}
	for k, d := range map[string]time.Duration{"portal.expiry": c.Portal.Expiry.Duration, "portal.max_expiry": c.Portal.MaxExpiry.Duration,
		"portal.session": c.Portal.Session.Duration, "portal.remember": c.Portal.Remember.Duration, "portal.code_validity": c.Portal.CodeValidity.Duration} {
		if d <= 0 {
			return c.errf(k, "must be a positive duration")
		}
	}
	if c.Portal.Expiry.Duration > c.Portal.MaxExpiry.Duration {
		return c.errf("portal.expiry", "is longer than portal.max_expiry")
	}
	if c.Portal.CodeAttempts < 1 || c.Portal.CodeAttempts > 10 {
		return c.errf("portal.code_attempts", "want 1 to 10")
	}
	if c.Portal.CodesPerHour < 1 || c.Portal.CodesPerHour > 60 {
		return c.errf("portal.codes_per_hour", "want 1 to 60")
	}
	if !brandColour.MatchString(c.Portal.BrandColour) {
		return c.errf("portal.brand_colour", "%q: want a colour like #1d4f91", c.Portal.BrandColour)
	}
	if r := contrastWithWhite(c.Portal.BrandColour); r < 4.5 {
		return c.errf("portal.brand_colour", "%q: white text on it has a contrast ratio of %.1f:1; WCAG 2.2 AA needs 4.5:1 (choose a darker colour)", c.Portal.BrandColour, r)
	}
	if c.Portal.LogoFile != "" {
		b, err := os.ReadFile(c.Portal.LogoFile)
		if err != nil {
			return c.errf("portal.logo_file", "%v", err)
		}
		if len(b) > 256<<10 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) {
			return c.errf("portal.logo_file", "want a PNG image of at most 256 KiB")
		}
	}
	if c.Portal.NoticeFrom != "" && !strings.Contains(c.Portal.NoticeFrom, "@") {
		return c.errf("portal.notice_from", "%q: want an address", c.Portal.NoticeFrom)
	}
	for i, d := range c.Portal.NoLinkDomains {
		d = strings.ToLower(strings.TrimSpace(d))
		if !validDomain(d) {
			return c.errf("portal.no_link_domains", "%q is not a domain name", d)
		}
		c.Portal.NoLinkDomains[i] = d
	}
	if c.Portal.MaxReplyBytes < 1<<20 {
		return c.errf("portal.max_reply_bytes", "must be at least 1048576")
	}
	if c.Audit.Retention.Duration < 24*time.Hour {
		return c.errf("audit.retention", "must be at least 1d")
	}
	if w := c.Audit.WitnessFile; w != "" && !filepath.IsAbs(w) {
		return c.errf("audit.witness_file", "%q: give an absolute path", w)
	}
	switch c.DNS.DMARCPolicy {
	case "reject", "quarantine", "none":
	default:
		return c.errf("dns.dmarc_policy", "%q: want reject, quarantine or none", c.DNS.DMARCPolicy)
	}
	switch c.DNS.MTASTSMode {
	case "enforce", "testing":
	default:
		return c.errf("dns.mta_sts_mode", "%q: want enforce or testing", c.DNS.MTASTSMode)
	}
	for k, v := range map[string]string{"dns.dmarc_rua": c.DNS.DMARCRUA, "dns.tls_rpt_rua": c.DNS.TLSRPTRUA} {
		if v != "" && !strings.HasPrefix(v, "mailto:") && !strings.HasPrefix(v, "https://") {
			return c.errf(k, "%q: want mailto:ADDRESS", v)
		}
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return c.errf("log.level", "%q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		return c.errf("log.format", "%q: want json or text", c.Log.Format)
	}
	if err := c.validateTLSRPT(); err != nil {
		return err
	}
	if err := c.validateSMIME(); err != nil {
		return err
	}
	return c.validateEncryption()
}

// IsOrgDomain reports whether domain (lower case) is one of the org's.
func (c *Config) IsOrgDomain(domain string) bool {
	for _, d := range c.Org.Domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// IsConnector reports whether ip may relay outbound mail without AUTH.
func (c *Config) IsConnector(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range c.ConnectorNets {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Path returns a path under the data directory.
func (c *Config) Path(elem ...string) string {
	return filepath.Join(append([]string{c.DataDir}, elem...)...)
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%q: want host:port", s)
	}
	if host == "" {
		return fmt.Errorf("%q: host is missing", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("%q: port must be 1-65535", s)
	}
	return nil
}

// checkListen is checkHostPort, but port 0 (any free port) is allowed.
func checkListen(s string) error {
	if host, port, err := net.SplitHostPort(s); err == nil && port == "0" && host != "" {
		return nil
	}
	return checkHostPort(s)
}

func validLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !validLabel(l) {
			return false
		}
	}
	return true
}

// KeyError is an error about the value of key found after loading (a
// listen address in use, a file that cannot be read), with the line where
// the file sets the key.
func (c *Config) KeyError(key, msg string) *Error {
	e := &Error{File: c.File, Key: key, Msg: msg}
	if c.File != "" {
		if data, err := os.ReadFile(c.File); err == nil {
			e.Line = keyLine(data, key)
		}
	}
	return e
}

// tableLine is the line of the n-th (from 0) [[name]] header, 0 if not found.
func tableLine(data []byte, name string, n int) int {
	for i, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(strings.SplitN(line, "#", 2)[0])
		if strings.HasPrefix(t, "[[") && strings.Trim(t, "[] ") == name {
			if n == 0 {
				return i + 1
			}
			n--
		}
	}
	return 0
}

// keyLine finds the line where a dotted key ("smtp.hostname") is set in a TOML
// file. It understands the plain `[table]` / `key = value` layout that
// `sealpost init` writes and that operators keep; 0 if not found.
func keyLine(data []byte, key string) int {
	table, leaf := "", key
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		table, leaf = key[:i], key[i+1:]
	}
	if i := strings.IndexByte(key, '['); i >= 0 {
		// dlp.custom[2].patterns: the table's first line is close enough
		table, leaf = key[:i], ""
		key = table
	}
	current := ""
	for n, line := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(line)
		if strings.HasPrefix(t, "[") {
			current = strings.Trim(strings.TrimSpace(strings.SplitN(t, "#", 2)[0]), "[] ")
			if current == key {
				return n + 1
			}
			continue
		}
		k, _, ok := strings.Cut(t, "=")
		if ok && current == table && strings.Trim(strings.TrimSpace(k), `"'`) == leaf {
			return n + 1
		}
	}
	return 0
}
