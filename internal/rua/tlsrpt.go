package rua

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// TLSReport is an SMTP TLS report (RFC 8460 §4.4).
type TLSReport struct {
	OrganizationName string `json:"organization-name"`
	DateRange        struct {
		Start string `json:"start-datetime"`
		End   string `json:"end-datetime"`
	} `json:"date-range"`
	ContactInfo string      `json:"contact-info"`
	ReportID    string      `json:"report-id"`
	Policies    []TLSPolicy `json:"policies"`
}

// TLSPolicy is one policy's results.
type TLSPolicy struct {
	Policy struct {
		Type   string   `json:"policy-type"` // "tlsa", "sts", "no-policy-found"
		String []string `json:"policy-string"`
		Domain string   `json:"policy-domain"`
		MXHost []string `json:"mx-host"`
	} `json:"policy"`
	Summary struct {
		Success int64 `json:"total-successful-session-count"`
		Failure int64 `json:"total-failure-session-count"`
	} `json:"summary"`
	Failures []TLSFailure `json:"failure-details"`
}

// TLSFailure is one kind of failure (RFC 8460 §4.3 result types).
type TLSFailure struct {
	ResultType    string `json:"result-type"`
	SendingMTAIP  string `json:"sending-mta-ip"`
	ReceivingMX   string `json:"receiving-mx-hostname"`
	ReceivingIP   string `json:"receiving-ip"`
	FailedCount   int64  `json:"failed-session-count"`
	AdditionalInf string `json:"additional-information"`
	ReasonCode    string `json:"failure-reason-code"`
}

// ParseTLSReport reads a TLS report (plain or gzip JSON).
func ParseTLSReport(data []byte) (*TLSReport, error) {
	b, err := Unpack(data)
	if err != nil {
		return nil, err
	}
	var r TLSReport
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("TLS report: %w", err)
	}
	if len(r.Policies) == 0 {
		return nil, errors.New("TLS report: no policies")
	}
	for i, p := range r.Policies {
		if p.Policy.Domain == "" {
			return nil, fmt.Errorf("TLS report: policy %d has no policy-domain", i+1)
		}
		if p.Summary.Success < 0 || p.Summary.Failure < 0 {
			return nil, fmt.Errorf("TLS report: policy %d: negative count", i+1)
		}
	}
	return &r, nil
}

// TLSSource sums up one receiving host's sessions for one policy domain.
type TLSSource struct {
	Domain   string           `json:"domain"`
	MX       string           `json:"mx"` // "" for the policy as a whole
	Success  int64            `json:"success"`
	Failure  int64            `json:"failure"`
	ByResult map[string]int64 `json:"by_result,omitempty"`
	Fix      []string         `json:"fix,omitempty"`
}

// TLSSources sums reports per policy domain and receiving MX.
func TLSSources(reports ...*TLSReport) []TLSSource {
	by := map[[2]string]*TLSSource{}
	get := func(d, mx string) *TLSSource {
		k := [2]string{strings.ToLower(d), strings.ToLower(strings.TrimSuffix(mx, "."))}
		s := by[k]
		if s == nil {
			s = &TLSSource{Domain: k[0], MX: k[1], ByResult: map[string]int64{}}
			by[k] = s
		}
		return s
	}
	for _, r := range reports {
		for _, p := range r.Policies {
			all := get(p.Policy.Domain, "")
			all.Success += p.Summary.Success
			all.Failure += p.Summary.Failure
			for _, f := range p.Failures {
				s := get(p.Policy.Domain, f.ReceivingMX)
				s.Failure += f.FailedCount
				s.ByResult[f.ResultType] += f.FailedCount
				all.ByResult[f.ResultType] += f.FailedCount
			}
		}
	}
	out := make([]TLSSource, 0, len(by))
	for _, s := range by {
		for rt := range s.ByResult {
			if f := tlsFix(rt, s); f != "" {
				s.Fix = append(s.Fix, f)
			}
		}
		sort.Strings(s.Fix)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Domain != out[j].Domain {
			return out[i].Domain < out[j].Domain
		}
		return out[i].MX < out[j].MX
	})
	return out
}

// tlsFix explains a result type (RFC 8460 §4.3).
func tlsFix(rt string, s *TLSSource) string {
	host := s.MX
	if host == "" {
		host = "the MX hosts of " + s.Domain
	}
	switch rt {
	case "starttls-not-supported":
		return "offer STARTTLS on " + host
	case "certificate-expired":
		return "renew the certificate of " + host
	case "certificate-host-mismatch":
		return "give " + host + " a certificate for its own name"
	case "certificate-not-trusted", "validation-failure":
		return "serve the full chain of a publicly trusted certificate on " + host
	case "tlsa-invalid", "dane-required":
		return "make the TLSA records of " + host + " match its certificate"
	case "dnssec-invalid":
		return "fix the DNSSEC signatures of " + s.Domain
	case "sts-policy-fetch-error", "sts-policy-invalid":
		return "serve a valid policy at https://mta-sts." + s.Domain + "/.well-known/mta-sts.txt"
	case "sts-webpki-invalid":
		return "give mta-sts." + s.Domain + " a publicly trusted certificate"
	}
	return ""
}
