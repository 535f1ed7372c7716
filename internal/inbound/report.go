package inbound

// Report is the verdict in the shape INTERFACE.md gives for
// `sealpost inbound test --json` (verdict deliver|quarantine|reject|
// tempfail; spf, dmarc and arc as their result words; dkim per
// signature; checks with name, result and reason), with additions: tagged
// (delivered with failing results, DMARC p=none), reply, why, the From
// domain, whether it is one of the org's, and the fields to prepend.
type Report struct {
	Verdict    string       `json:"verdict"`
	Tagged     bool         `json:"tagged,omitempty"`
	Reply      string       `json:"reply,omitempty"`
	Why        string       `json:"why"`
	HeaderFrom string       `json:"header_from,omitempty"`
	OwnDomain  bool         `json:"own_domain,omitempty"`
	SPF        string       `json:"spf"`
	DKIM       []DKIMReport `json:"dkim"`
	DMARC      string       `json:"dmarc"`
	ARC        string       `json:"arc"`
	Checks     []Check      `json:"checks"`
	Prepend    string       `json:"prepend,omitempty"`
}

// DKIMReport is one signature in a Report.
type DKIMReport struct {
	Domain    string `json:"domain"`
	Result    string `json:"result"`
	Selector  string `json:"selector,omitempty"`
	Algorithm string `json:"algorithm,omitempty"`
}

// Report returns v for people and programs.
func (v *Verdict) Report() Report {
	r := Report{Why: v.Why, HeaderFrom: v.From, OwnDomain: v.Own, SPF: string(v.SPF.Status), DMARC: v.DMARC.Status,
		ARC: string(v.ARC.Status), Checks: v.Checks, Prepend: v.Prepend, DKIM: []DKIMReport{}}
	switch v.Action {
	case Accept:
		r.Verdict = "deliver"
	case Tag:
		r.Verdict, r.Tagged = "deliver", true
	default:
		r.Verdict = string(v.Action)
	}
	if v.Reply != nil {
		r.Reply = v.Reply.String()
	}
	for _, d := range v.DKIM {
		if d.Status == "none" && d.Domain == "" {
			continue
		}
		r.DKIM = append(r.DKIM, DKIMReport{Domain: d.Domain, Result: string(d.Status), Selector: d.Selector, Algorithm: d.Algorithm})
	}
	return r
}
