package gateway

import (
	"bytes"
	"errors"
	"fmt"
	"net/mail"
	"path/filepath"

	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/policy"
	"sealpost/internal/portal"
)

// available says which policy actions this gateway carries out:
// recipient-key encryption ([encryption], and [smime] for S/MIME) and the
// portal can be switched off. The policy falls back to the portal, or to
// hold, never to plain delivery; a recipient without a usable key goes to
// the portal too (resolveKeys, and the transports at delivery).
func available(cfg *config.Config) func(policy.Action) bool {
	return func(a policy.Action) bool {
		switch a {
		case policy.Encrypt, policy.EncryptPGP:
			return cfg.Encryption.Enabled
		case policy.EncryptSMIME:
			return cfg.SMIME.Enabled
		case policy.Portal:
			return cfg.Portal.Enabled
		}
		return true
	}
}

// DLPEngine builds the scanner of cfg (nil cfg: built-in detectors only).
func DLPEngine(cfg *config.Config) (*dlp.Engine, error) {
	limits := dlp.DefaultLimits
	var custom []dlp.Custom
	if cfg != nil {
		for _, c := range cfg.DLP.Custom {
			custom = append(custom, dlp.Custom{Name: c.Name, Keywords: c.Keywords, Patterns: c.Patterns})
		}
		limits.MaxPart = cfg.DLP.MaxAttachmentBytes
	}
	e, err := dlp.NewEngine(custom, limits)
	if err != nil {
		return nil, err
	}
	if cfg != nil {
		e.SetLabels(cfg.DLP.Labels)
		if f := cfg.DLP.VocalinkValacdosFile; f != "" {
			t, err := dlp.LoadModulusTables(pathOrEmpty(cfg, f), pathOrEmpty(cfg, cfg.DLP.VocalinkScsubtabFile))
			if err != nil {
				return nil, &config.Error{File: cfg.File, Key: "dlp.vocalink_valacdos_file", Msg: err.Error()}
			}
			e.SetModulusTables(t)
		} else if cfg.DLP.VocalinkScsubtabFile != "" {
			return nil, &config.Error{File: cfg.File, Key: "dlp.vocalink_scsubtab_file", Msg: "set only with dlp.vocalink_valacdos_file"}
		}
	}
	return e, nil
}

// pathOrEmpty: an absolute path as it is, a relative one under data_dir.
func pathOrEmpty(cfg *config.Config, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return cfg.Path(p)
}

// PolicyEngine compiles cfg's policy. An invalid rule is a config error
// naming the rule, its line and the CEL error.
func PolicyEngine(cfg *config.Config) (*policy.Engine, error) {
	var rules []policy.Rule
	for _, r := range cfg.Policy.Rules {
		rules = append(rules, policy.Rule{Name: r.Name, When: r.When, Action: r.Action, Reason: r.Reason, Line: r.Line})
	}
	e, err := policy.New(policy.Options{
		Rules: rules, Builtin: cfg.Policy.BuiltinRules, Disable: cfg.Policy.Disable,
		OrgDomains: cfg.Org.Domains, PartnerDomains: cfg.Policy.PartnerDomains, TLSAssured: cfg.Policy.TLSAssuredDomains,
		BulkThreshold: cfg.Policy.BulkThreshold, BulkSplit: cfg.Policy.BulkAction == "split", Available: available(cfg),
	})
	var re *policy.RuleError
	if errors.As(err, &re) {
		return nil, &config.Error{File: cfg.File, Line: re.Line, Key: fmt.Sprintf("policy.rule %q", re.Rule), Msg: re.Err}
	}
	if err != nil {
		return nil, err
	}
	for _, n := range cfg.Policy.Disable {
		found := false
		for _, r := range policy.Builtin {
			found = found || r.Name == n
		}
		if !found {
			return nil, &config.Error{File: cfg.File, Key: "policy.disable", Msg: fmt.Sprintf("%q is not a built-in rule", n)}
		}
	}
	return e, nil
}

// TestMessage runs a message through the scanner and the policy without
// sending it (`policy test`, the API, the console). from defaults to the
// From: address; to to the message's To, Cc and Bcc.
func TestMessage(cfg *config.Config, scanner *dlp.Engine, pol *policy.Engine, data []byte, from string, to []string, known func(string) bool) (*policy.Decision, error) {
	return testMessage(cfg, scanner, pol, data, from, to, known, nil)
}

// testMessage is TestMessage that also sees portal conversations (answers,
// when not nil, checks a header's thread tokens), as the running gateway.
func testMessage(cfg *config.Config, scanner *dlp.Engine, pol *policy.Engine, data []byte, from string, to []string, known func(string) bool,
	answers func(mail.Header) (*portal.Answered, error)) (*policy.Decision, error) {
	res, err := scanner.ScanMessage(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("not a message: %v", err)
	}
	headerFrom := ""
	if a, err := mail.ParseAddress(res.Header.Get("From")); err == nil {
		headerFrom = a.Address
	}
	if from == "" {
		from = headerFrom
	}
	if len(to) == 0 {
		for _, k := range []string{"To", "Cc", "Bcc"} {
			if l, err := res.Header.AddressList(k); err == nil {
				for _, a := range l {
					to = append(to, a.Address)
				}
			}
		}
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("no recipients: the message has no To/Cc/Bcc; give them")
	}
	var answered *portal.Answered
	if answers != nil {
		if answered, err = answers(res.Header); err != nil {
			return nil, fmt.Errorf("checking for portal conversations: %w", err)
		}
	}
	return pol.Decide(&policy.Input{MailFrom: from, HeaderFrom: headerFrom, Subject: res.Subject,
		Keyword: hasKeyword(res.Subject, cfg.Policy.SenderKeywords), Size: int64(len(data)), Visible: visible(res.Header),
		Classification: res.Classification, Findings: res.Findings, Recipients: to, Known: known,
		PortalThread: answered.Any(), ThreadParty: func(rcpt string) bool { return answered.Thread(rcpt) != "" }}), nil
}
