// Package tlsrpt implements SMTP TLS Reporting (RFC 8460): what a sending
// MTA records of each SMTP session's TLS, the daily aggregate report it
// sends to each policy domain, and the DNS record that says where.
//
// A domain that wants reports publishes a TXT record at _smtp._tls.DOMAIN
// (§3), "v=TLSRPTv1; rua=mailto:tlsrpt@example.org" (or an https: URI).
// The sender keeps, per policy domain and day (§4.1: a report covers one
// UTC day), the number of sessions that succeeded and of those that failed,
// with details of each failure kind (§4.3: starttls-not-supported,
// certificate-host-mismatch, …). A policy is the one that decided how the
// session was made (§4.4): "sts" (MTA-STS, RFC 8461), "tlsa" (DANE, RFC
// 7672) or "no-policy-found". Once a day, at a random time so that reports
// from many senders do not arrive at once (§4.1), one report per policy
// domain goes to each rua: gzip-compressed JSON (§4.4, §5.1), by mail as a
// multipart/report attachment application/tlsrpt+gzip, DKIM-signed and with
// "TLS-Required: No" so that a domain whose TLS is broken still hears of it
// (§5.3, RFC 8689 §5), or by HTTPS POST (§5.2).
//
// This package knows nothing of the store or the queue: it turns results
// into reports and reports into bytes.
package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"
)

// Policy types (§4.4 "policy-type").
const (
	PolicySTS      = "sts"
	PolicyTLSA     = "tlsa"
	PolicyNotFound = "no-policy-found"
)

// Result types (§4.3); ResultSuccess marks a session that succeeded and
// never appears in a report's failure details.
const (
	ResultSuccess                 = "success"
	ResultSTARTTLSNotSupported    = "starttls-not-supported"
	ResultCertificateHostMismatch = "certificate-host-mismatch"
	ResultCertificateExpired      = "certificate-expired"
	ResultCertificateNotTrusted   = "certificate-not-trusted"
	ResultValidationFailure       = "validation-failure"
	ResultTLSAInvalid             = "tlsa-invalid"
	ResultDNSSECInvalid           = "dnssec-invalid"
	ResultDANERequired            = "dane-required"
	ResultSTSPolicyFetchError     = "sts-policy-fetch-error"
	ResultSTSPolicyInvalid        = "sts-policy-invalid"
	ResultSTSWebPKIInvalid        = "sts-webpki-invalid"
)

// Result is what one SMTP session (or one attempt to make one) showed of
// TLS. The policy fields say which policy governed it; the outbound TLS
// policy fills them, or leaves PolicyType at PolicyNotFound.
type Result struct {
	PolicyType    string   // PolicySTS, PolicyTLSA or PolicyNotFound
	PolicyDomain  string   // the recipient domain (sts) or the MX host (tlsa), A-labels
	PolicyStrings []string // the MTA-STS policy lines or the TLSA records
	PolicyMXHosts []string // the MTA-STS policy's mx patterns

	ResultType        string // ResultSuccess or a failure type
	SendingMTAIP      string
	MXHost            string // the receiving MX host name
	ReceivingIP       string
	ReceivingMXHelo   string
	FailureReasonCode string // free text, e.g. the TLS alert; no secrets
}

// Policy is a report's "policy" object (§4.4).
type Policy struct {
	Type   string   `json:"policy-type"`
	String []string `json:"policy-string"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host,omitempty"`
}

// Summary is a report's "summary" object.
type Summary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetails is one entry of "failure-details".
type FailureDetails struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname"`
	ReceivingMXHelo       string `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string `json:"receiving-ip"`
	FailedSessionCount    int64  `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information,omitempty"`
	FailureReasonCode     string `json:"failure-reason-code,omitempty"`
}

// PolicyResult is one element of "policies".
type PolicyResult struct {
	Policy         Policy           `json:"policy"`
	Summary        Summary          `json:"summary"`
	FailureDetails []FailureDetails `json:"failure-details,omitempty"`
}

// DateRange is the report's "date-range" (RFC 3339 date-times, UTC).
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// Report is the aggregate report (§4.4).
type Report struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []PolicyResult `json:"policies"`
}

// Counted is a Result seen Count times.
type Counted struct {
	Result
	Count int64
}

// MaxFailureDetails bounds the failure details of one policy in a report:
// the counts stay exact, the rarest details beyond it are left out.
const MaxFailureDetails = 100

// Build aggregates the results of one policy domain for one UTC day into a
// report. Results are grouped by policy; within a policy, failures with
// the same details are counted together.
func Build(org, contact, reportID string, day time.Time, results []Counted) Report {
	start := time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	r := Report{OrganizationName: org, ContactInfo: contact, ReportID: reportID,
		DateRange: DateRange{Start: start, End: start.Add(24 * time.Hour)}, Policies: []PolicyResult{}}
	index := map[string]int{}
	details := map[string]map[FailureDetails]int64{}
	for _, c := range results {
		p := Policy{Type: c.PolicyType, String: c.PolicyStrings, Domain: strings.ToLower(strings.TrimSuffix(c.PolicyDomain, ".")), MXHost: c.PolicyMXHosts}
		if p.Type == "" {
			p.Type = PolicyNotFound
		}
		if p.String == nil {
			p.String = []string{}
		}
		key := p.Type + "\x00" + strings.Join(p.String, "\x01") + "\x00" + p.Domain + "\x00" + strings.Join(p.MXHost, "\x01")
		i, ok := index[key]
		if !ok {
			i = len(r.Policies)
			index[key] = i
			r.Policies = append(r.Policies, PolicyResult{Policy: p})
			details[key] = map[FailureDetails]int64{}
		}
		if c.ResultType == ResultSuccess {
			r.Policies[i].Summary.Successful += c.Count
			continue
		}
		r.Policies[i].Summary.Failed += c.Count
		fd := FailureDetails{ResultType: c.ResultType, SendingMTAIP: c.SendingMTAIP, ReceivingMXHostname: c.MXHost,
			ReceivingMXHelo: c.ReceivingMXHelo, ReceivingIP: c.ReceivingIP, FailureReasonCode: c.FailureReasonCode}
		details[key][fd] += c.Count
	}
	for key, i := range index {
		var fds []FailureDetails
		for fd, n := range details[key] {
			fd.FailedSessionCount = n
			fds = append(fds, fd)
		}
		// Most frequent first, then a stable order, so reports are
		// reproducible and the cap drops the rarest.
		sort.Slice(fds, func(a, b int) bool {
			if fds[a].FailedSessionCount != fds[b].FailedSessionCount {
				return fds[a].FailedSessionCount > fds[b].FailedSessionCount
			}
			return fmt.Sprint(fds[a]) < fmt.Sprint(fds[b])
		})
		if len(fds) > MaxFailureDetails {
			fds = fds[:MaxFailureDetails]
		}
		r.Policies[i].FailureDetails = fds
	}
	slices.SortStableFunc(r.Policies, func(a, b PolicyResult) int {
		return strings.Compare(a.Policy.Type+a.Policy.Domain, b.Policy.Type+b.Policy.Domain)
	})
	return r
}

// Gzip is the report as gzip-compressed JSON (§5.1), refused when the
// result is larger than max bytes (0: no limit).
func Gzip(r Report, max int) ([]byte, error) {
	js, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write(js); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if max > 0 && b.Len() > max {
		return nil, fmt.Errorf("%w: %d bytes compressed, the limit is %d", ErrTooLarge, b.Len(), max)
	}
	return b.Bytes(), nil
}

// ErrTooLarge: a report over the size cap is not sent.
var ErrTooLarge = errors.New("TLS report too large")
