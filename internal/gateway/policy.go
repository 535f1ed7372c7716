package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/mail"
	"path/filepath"

	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/pipeline"
	"sealpost/internal/policy"
)

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
	o := &pipeline.Outbound{DLP: scanner, Policy: pol, Keywords: cfg.Policy.SenderKeywords, Known: known}
	return testMessage(context.Background(), o, data, from, to)
}

// testMessage decides on data through o exactly as the outbound listener
// does at the end of DATA (the same data check, fed the same bytes, with
// the header captured the same way), so a test shows what SMTP would do:
// a message the scanner cannot read is decided on as unscannable here too.
func testMessage(ctx context.Context, o *pipeline.Outbound, data []byte, from string, to []string) (*policy.Decision, error) {
	hc := &pipeline.HeaderCapture{Max: 64 << 10}
	hc.Write(data)
	hi := hc.Info()
	if from == "" {
		from = hi.From
	}
	if len(to) == 0 {
		m, err := mail.ReadMessage(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("not a message (%v), so it names no recipients", err)
		}
		for _, k := range []string{"To", "Cc", "Bcc"} {
			if l, err := m.Header.AddressList(k); err == nil {
				for _, a := range l {
					to = append(to, a.Address)
				}
			}
		}
	}
	if len(to) == 0 {
		return nil, fmt.Errorf("no recipients: the message has no To/Cc/Bcc; give them")
	}
	in := &pipeline.Input{Direction: "out", MailFrom: from, Rcpts: to, Header: hi}
	run := o.Start(in)
	run.Write(data)
	v := run.Finish(ctx, in)
	if v.Decision == nil {
		return nil, fmt.Errorf("%s: %s", v.Check, v.Reason)
	}
	return v.Decision, nil
}
