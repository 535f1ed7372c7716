package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	moxtlsrpt "github.com/mjl-/mox/tlsrpt"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

var day = time.Date(2026, 11, 30, 15, 4, 5, 0, time.UTC)

func sampleResults() []Counted {
	sts := Result{PolicyType: PolicySTS, PolicyDomain: "Company-Y.example.", PolicyStrings: []string{"version: STSv1", "mode: enforce", "mx: *.mail.company-y.example", "max_age: 86400"},
		PolicyMXHosts: []string{"*.mail.company-y.example"}, SendingMTAIP: "192.0.2.1", MXHost: "mx1.mail.company-y.example", ReceivingIP: "203.0.113.5"}
	ok := sts
	ok.ResultType = ResultSuccess
	expired := sts
	expired.ResultType, expired.FailureReasonCode = ResultCertificateExpired, "certificate-expired"
	stripped := sts
	stripped.ResultType, stripped.MXHost = ResultSTARTTLSNotSupported, "mx2.mail.company-y.example"
	none := Result{PolicyType: PolicyNotFound, PolicyDomain: "company-y.example", ResultType: ResultSuccess, MXHost: "mx1.mail.company-y.example"}
	return []Counted{{ok, 40}, {expired, 2}, {ok, 2}, {stripped, 1}, {expired, 1}, {none, 7}}
}

// TestBuild: one policy object per distinct policy, exact counts, equal
// failures counted together, most frequent first.
func TestBuild(t *testing.T) {
	r := Build("Example Council", "mailto:postmaster@example.gov.uk", "r1", day, sampleResults())
	if !r.DateRange.Start.Equal(time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)) || r.DateRange.End.Sub(r.DateRange.Start) != 24*time.Hour {
		t.Fatalf("date range %+v, want the UTC day", r.DateRange)
	}
	if len(r.Policies) != 2 {
		t.Fatalf("%d policies, want 2: %+v", len(r.Policies), r.Policies)
	}
	nf, sts := r.Policies[0], r.Policies[1]
	if nf.Policy.Type != PolicyNotFound || nf.Summary != (Summary{Successful: 7}) || len(nf.FailureDetails) != 0 {
		t.Fatalf("no-policy-found: %+v", nf)
	}
	if sts.Policy.Domain != "company-y.example" || sts.Summary != (Summary{Successful: 42, Failed: 4}) {
		t.Fatalf("sts summary: %+v", sts)
	}
	if len(sts.FailureDetails) != 2 || sts.FailureDetails[0].ResultType != ResultCertificateExpired || sts.FailureDetails[0].FailedSessionCount != 3 ||
		sts.FailureDetails[1].ResultType != ResultSTARTTLSNotSupported || sts.FailureDetails[1].FailedSessionCount != 1 {
		t.Fatalf("failure details: %+v", sts.FailureDetails)
	}
	// The cap keeps the counts exact and drops the rarest details.
	var many []Counted
	for i := 0; i < MaxFailureDetails+20; i++ {
		many = append(many, Counted{Result{PolicyDomain: "d.example", ResultType: ResultValidationFailure, MXHost: "mx" + strings.Repeat("x", i) + ".d.example"}, int64(1 + i)})
	}
	capped := Build("o", "c", "id", day, many).Policies[0]
	if len(capped.FailureDetails) != MaxFailureDetails || capped.Summary.Failed != int64((MaxFailureDetails+20)*(MaxFailureDetails+21)/2) ||
		capped.FailureDetails[0].FailedSessionCount != MaxFailureDetails+20 {
		t.Fatalf("capped: %d details, failed %d, first %d", len(capped.FailureDetails), capped.Summary.Failed, capped.FailureDetails[0].FailedSessionCount)
	}
}

func reportFor(t *testing.T) (Report, []byte) {
	t.Helper()
	var res []Counted
	for _, c := range sampleResults() {
		if c.PolicyType == PolicySTS {
			res = append(res, c)
		}
	}
	r := Build("Example Council", "mailto:postmaster@example.gov.uk", "2026-11-30.company-y.example@gw.example.gov.uk", day, res)
	gz, err := Gzip(r, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return r, gz
}

// TestReportParsesWithMox: the mail message is one mox's TLS-RPT parser
// (written by others) reads, with every count and detail intact.
func TestReportParsesWithMox(t *testing.T) {
	r, gz := reportFor(t)
	var msg bytes.Buffer
	if err := WriteMessage(&msg, Mail{From: "tlsrpt-noreply@example.gov.uk", To: "tlsrpt@company-y.example", Submitter: "gw.example.gov.uk", Date: day}, r, gz); err != nil {
		t.Fatal(err)
	}
	raw := msg.String()
	for _, h := range []string{"\r\nTLS-Required: No\r\n", "\r\nTLS-Report-Domain: company-y.example\r\n", "\r\nTLS-Report-Submitter: gw.example.gov.uk\r\n",
		"Subject: Report Domain: company-y.example Submitter: gw.example.gov.uk Report-ID: <2026-11-30.company-y.example@gw.example.gov.uk>\r\n",
		`report-type="tlsrpt"`, "Content-Type: application/tlsrpt+gzip\r\n", `filename="gw.example.gov.uk!company-y.example!1795996800!1796083200!`} {
		if !strings.Contains(raw, h) {
			t.Errorf("message lacks %q", h)
		}
	}
	got, err := moxtlsrpt.ParseMessage(slog.Default(), bytes.NewReader(msg.Bytes()))
	if err != nil {
		t.Fatalf("mox cannot parse the report: %v\n%s", err, raw)
	}
	if got.OrganizationName != r.OrganizationName || got.ReportID != r.ReportID || got.ContactInfo != r.ContactInfo ||
		!got.DateRange.Start.Equal(r.DateRange.Start) || !got.DateRange.End.Equal(r.DateRange.End) || len(got.Policies) != 1 {
		t.Fatalf("mox read %+v", got)
	}
	p := got.Policies[0]
	if p.Policy.Type != moxtlsrpt.STS || p.Policy.Domain != "company-y.example" || len(p.Policy.String) != 4 || len(p.Policy.MXHost) != 1 ||
		p.Summary.TotalSuccessfulSessionCount != 42 || p.Summary.TotalFailureSessionCount != 4 || len(p.FailureDetails) != 2 ||
		p.FailureDetails[0].ResultType != moxtlsrpt.ResultCertificateExpired || p.FailureDetails[0].FailedSessionCount != 3 ||
		p.FailureDetails[0].ReceivingMXHostname != "mx1.mail.company-y.example" || p.FailureDetails[0].SendingMTAIP != "192.0.2.1" {
		t.Fatalf("mox read policy %+v", p)
	}
}

// TestReportMatchesRFC8460Schema: the JSON satisfies a schema written from
// RFC 8460 §4.4, which also accepts the RFC's own example report.
func TestReportMatchesRFC8460Schema(t *testing.T) {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	sch, err := c.Compile("../../testdata/tlsrpt/rfc8460-report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	validate := func(name string, js []byte) error {
		v, err := jsonschema.UnmarshalJSON(bytes.NewReader(js))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return sch.Validate(v)
	}
	example, err := os.ReadFile("../../testdata/tlsrpt/rfc8460-example-report.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := validate("RFC example", example); err != nil {
		t.Fatalf("the schema refuses the RFC's example: %v", err)
	}
	_, gz := reportFor(t)
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		t.Fatal(err)
	}
	js, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if err := validate("ours", js); err != nil {
		t.Fatalf("our report does not match RFC 8460: %v\n%s", err, js)
	}
	// The schema has teeth: a report without its policy type fails.
	var m map[string]any
	json.Unmarshal(js, &m)
	delete(m["policies"].([]any)[0].(map[string]any)["policy"].(map[string]any), "policy-type")
	bad, _ := json.Marshal(m)
	if validate("broken", bad) == nil {
		t.Fatal("the schema accepts a policy without policy-type")
	}
}

func TestGzipCap(t *testing.T) {
	r, _ := reportFor(t)
	if _, err := Gzip(r, 50); err == nil {
		t.Fatal("a report over the size cap was made")
	}
}

// TestParseRecord: RFC 8460 §3 records, checked against mox's parser for
// the valid ones.
func TestParseRecord(t *testing.T) {
	test := func(txt string, want ...string) {
		t.Helper()
		r, err := ParseRecord(txt)
		if len(want) == 0 {
			if err == nil {
				t.Errorf("%q: accepted %v, want refused", txt, r.RUA)
			}
			return
		}
		if err != nil {
			t.Errorf("%q: %v", txt, err)
			return
		}
		if strings.Join(r.RUA, " ") != strings.Join(want, " ") {
			t.Errorf("%q: rua %v, want %v", txt, r.RUA, want)
		}
		if mr, _, err := moxtlsrpt.ParseRecord(txt); err != nil || len(mr.RUAs) == 0 {
			t.Errorf("%q: mox refuses a record we accept: %v", txt, err)
		}
	}
	test("v=TLSRPTv1; rua=mailto:reports@example.com", "mailto:reports@example.com")
	test("v=TLSRPTv1;rua=mailto:a@example.com,https://r.example.com/v1/tlsrpt", "mailto:a@example.com", "https://r.example.com/v1/tlsrpt")
	test("v=TLSRPTv1; rua=mailto:a@example.com , mailto:b@example.com;", "mailto:a@example.com", "mailto:b@example.com")
	test("v=TLSRPTv1; ext=1; rua=https://r.example.com", "https://r.example.com")
	test("v=TLSRPTv1;")
	test("v=TLSRPTv2; rua=mailto:a@example.com")
	test("rua=mailto:a@example.com; v=TLSRPTv1")
	test("v=TLSRPTv1; rua=ftp://example.com/x")
	test("v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com")
	test("v=TLSRPTv1; rua=mailto:nobody")
	test("v=TLSRPTv1; bad name=x; rua=mailto:a@example.com")
	if _, err := Select([]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1; rua=mailto:b@example.com"}); err == nil {
		t.Error("two records accepted (§3: then there is none)")
	}
	if r, err := Select([]string{"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com"}); err != nil || r.RUA[0] != "mailto:a@example.com" {
		t.Errorf("select: %v %v", r, err)
	}
	if a, ok := MailtoAddress("mailto:tls%2Breports@example.com?subject=x"); !ok || a != "tls+reports@example.com" {
		t.Errorf("mailto address %q %v", a, ok)
	}
}

// FuzzParseRecord: a record never panics the parser, and what it accepts
// has only mailto: and https: report URIs, none holding a delimiter.
func FuzzParseRecord(f *testing.F) {
	for _, s := range []string{"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1;rua=https://x.example/a,mailto:b@c", "v=TLSRPTv1; a=b; rua=mailto:%2C@x;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseRecord(s)
		if err != nil {
			return
		}
		for _, u := range r.RUA {
			if !strings.HasPrefix(strings.ToLower(u), "mailto:") && !strings.HasPrefix(strings.ToLower(u), "https:") {
				t.Fatalf("%q: kept %q", s, u)
			}
			if strings.ContainsAny(u, ",;") {
				t.Fatalf("%q: URI %q holds a delimiter", s, u)
			}
		}
	})
}
