package tlspolicy

// CheckReport is `sealpost tls check --json` (INTERFACE.md): what would
// happen to mail for a domain now, for the support desk.
type CheckReport struct {
	Domain      string       `json:"domain"`
	Mode        Mode         `json:"mode"`
	Why         string       `json:"why"`
	MX          []CheckMX    `json:"mx"`
	Policy      *CheckPolicy `json:"policy"`
	ListEntry   string       `json:"list_entry,omitempty"`
	MXAuthentic bool         `json:"mx_authentic"`
	Failure     string       `json:"failure,omitempty"`
	Fail        string       `json:"fail,omitempty"` // the reply every recipient would get, when no host may be tried
}

// CheckMX is one MX host in a CheckReport.
type CheckMX struct {
	Host    string `json:"host"`
	Pref    uint16 `json:"pref"`
	Allowed bool   `json:"allowed"`
	TLSA    string `json:"tlsa"`
	Mode    Mode   `json:"mode"`
	Why     string `json:"why"`
	Defer   string `json:"defer,omitempty"`
}

// CheckPolicy is the MTA-STS policy in force.
type CheckPolicy struct {
	ID   string `json:"id"`
	Mode string `json:"mode"`
	Text string `json:"text"`
}

// Report renders r for people and scripts.
func (r *Result) Report() CheckReport {
	c := CheckReport{Domain: r.Domain, Mode: r.Mode, Why: r.Why, ListEntry: r.ListEntry, MXAuthentic: r.MXAuthentic, Failure: r.Failure, Fail: r.Fail, MX: []CheckMX{}}
	if r.STSID != "" {
		c.Policy = &CheckPolicy{ID: r.STSID, Mode: r.STSMode, Text: r.STSText}
	}
	for _, h := range r.Hosts {
		c.MX = append(c.MX, CheckMX{Host: h.Host, Pref: h.Pref, Allowed: h.Allowed && h.Defer == "", TLSA: TLSAString(h.TLSA), Mode: h.Mode, Why: h.Why, Defer: h.Defer})
	}
	return c
}
