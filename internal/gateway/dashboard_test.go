package gateway

import (
	"context"
	"crypto/sha256"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/policy"
	"sealpost/internal/report"
	"sealpost/internal/store"
)

var (
	chartRowRe = regexp.MustCompile(`<text x="144" y="\d+" text-anchor="end">([^<]+)</text><rect [^>]*></rect><text x="\d+" y="\d+">(\d+)</text>`)
	metricRe   = regexp.MustCompile(`(?m)^(sealpost_policy_decisions_total|sealpost_dlp_findings_total)\{(?:outcome|detector)="([^"]+)"\} (\d+)$`)
)

// dashboardCharts reads the charts of the dashboard's first period (the
// last 24 hours) as the visible text of their rows.
func dashboardCharts(t *testing.T, page string) (outcomes, matches map[string]int) {
	t.Helper()
	first := page[strings.Index(page, "<h2>Last 24 hours</h2>"):strings.Index(page, "<h2>Last 30 days</h2>")]
	i := strings.Index(first, "DLP matches by detector</h3>")
	if i < 0 {
		t.Fatalf("no DLP chart:\n%s", first)
	}
	rows := func(s string) map[string]int {
		m := map[string]int{}
		for _, r := range chartRowRe.FindAllStringSubmatch(s, -1) {
			n, _ := strconv.Atoi(r[2])
			m[r[1]] = n
		}
		return m
	}
	return rows(first[:i]), rows(first[i:])
}

func scrape(t *testing.T, e *env) (outcomes, matches map[string]int) {
	t.Helper()
	resp, err := http.Get("http://" + e.gw.WebAddr.String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics %d\n%s", resp.StatusCode, b)
	}
	outcomes, matches = map[string]int{}, map[string]int{}
	for _, m := range metricRe.FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[3])
		if m[1] == "sealpost_policy_decisions_total" {
			outcomes[m[2]] = n
		} else {
			matches[m[2]] = n
		}
	}
	return outcomes, matches
}

// TestDashboardMetricsReportAgree: after messages of every action the
// gateway carries out, the console's dashboard, /metrics and the usage
// report give the same counts (one source: the decisions in the store);
// the dashboard's charts say their labels and values in text; it lists no
// action this gateway cannot carry out; and in dev mode mail captured in
// the outbox is not counted as delivered without TLS.
func TestDashboardMetricsReportAgree(t *testing.T) {
	e := startDev(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive"}
		c.Policy.Rules = append(c.Policy.Rules, config.PolicyRule{Name: "review-me", When: `message.subject.contains("review me")`, Action: "quarantine", Reason: "asked for review"})
	})
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	send := func(to, subject, body string, want int) {
		t.Helper()
		if code, reply := outbound(t, e, "staff@example.gov.uk", []string{to}, message("staff@example.gov.uk", to, subject, body)); code != want {
			t.Fatalf("%s: %d %s", subject, code, reply)
		}
	}
	send("friend@elsewhere.example", "lunch", "lunch?", 250)                                                          // deliver
	send("friend@elsewhere.example", "lunch again", "lunch tomorrow?", 250)                                           // deliver
	send("jane@citizen.example", "[secure] case", "NHS no. 943 476 5919 and 943 476 5919", 250)                       // portal
	send("boss@examp1e.gov.uk", "minutes", "the minutes", 250)                                                        // hold (look-alike)
	send("colleague@example.gov.uk", "review me", "card 4111 1111 1111 1111 exp 09/27", 250)                          // quarantine
	send("it@example.gov.uk", "key", "-----BEGIN RSA PRIVATE KEY-----\r\nMIIB\r\n-----END RSA PRIVATE KEY-----", 550) // reject
	captured(t, e, "friend@elsewhere.example", "lunch again")
	captured(t, e, "jane@citizen.example", "Secure message")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n, _ := e.gw.Store.QueueDepth(context.Background()); n == 0 {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("%d recipients still queued", n)
		}
	}

	aud := newBrowser(t, e)
	aud.get("/console/login")
	st, page := aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}})
	if st != 200 || !strings.Contains(page, "<h1>Dashboard</h1>") {
		t.Fatalf("sign-in %d", st)
	}
	dash, dashMatches := dashboardCharts(t, page)
	met, metMatches := scrape(t, e)
	now := time.Now()
	rep, err := report.Build(context.Background(), e.gw.Store, now.Add(-24*time.Hour), now.Add(time.Minute))
	if err != nil || len(rep.Months) != 1 {
		t.Fatalf("report %+v %v", rep, err)
	}
	month := rep.Months[0]

	want := map[string]int{"deliver": 2, "portal": 1, "hold": 1, "quarantine": 1, "reject": 1}
	for action, n := range want {
		if dash[action] != n || met[action] != n {
			t.Errorf("%s: dashboard %d, metrics %d, want %d", action, dash[action], met[action], n)
		}
		if a, _ := policy.ParseAction(action); a > policy.Deliver && month.Protected[action] != n {
			t.Errorf("%s: report %d, want %d", action, month.Protected[action], n)
		}
	}
	total := 0
	for _, n := range want {
		total += n
	}
	if month.ProtectedTotal != total-want["deliver"] {
		t.Errorf("report protected total %d", month.ProtectedTotal)
	}
	if !strings.Contains(page, strconv.Itoa(total)+" outbound messages.") {
		t.Errorf("the dashboard does not say %d outbound messages", total)
	}
	// S/MIME is off until trust anchors are configured; OpenPGP is on.
	if _, listed := dash["encrypt-smime"]; listed {
		t.Error("the dashboard lists encrypt-smime, which this gateway cannot do")
	}
	for _, a := range []string{"encrypt", "encrypt-pgp"} {
		if _, listed := dash[a]; !listed {
			t.Errorf("the dashboard leaves out %s, which this gateway can do", a)
		}
	}
	if _, listed := dash["require-tls"]; !listed {
		t.Error("the dashboard leaves out require-tls, which this gateway can do")
	}
	for det, n := range dashMatches {
		if metMatches[det] != n {
			t.Errorf("DLP %s: dashboard %d, metrics %d", det, n, metMatches[det])
		}
	}
	if dashMatches["uk-nhs-number"] != 2 || dashMatches["payment-card"] != 1 || len(metMatches) != len(dashMatches) {
		t.Errorf("DLP matches: dashboard %v, metrics %v", dashMatches, metMatches)
	}
	if month.Incidents["uk-nhs-number"] != 1 {
		t.Errorf("report incidents %v (messages, not matches)", month.Incidents)
	}
	// Charts carry their labels and values: as text, and for screen readers.
	if !strings.Contains(page, `aria-label="Messages by policy action, last 24 hours: deliver 2,`) || !strings.Contains(page, "<title>Messages by policy action, last 24 hours: deliver 2,") {
		t.Error("the outcome chart has no accessible name with its values")
	}
	// Dev mode: the outbox is neither TLS nor plaintext delivery.
	if !strings.Contains(page, "Deliveries to the internet: 0 over TLS, 0 without.") || !strings.Contains(page, "captured in the dev outbox") {
		t.Errorf("dev-mode deliveries counted as internet deliveries:\n%s", page[strings.Index(page, "<h2>Last 24 hours</h2>"):][:600])
	}

	// The counters are the store's: a gateway started again on the same
	// data serves the same values.
	rt := &report.Running{Store: e.gw.Store}
	outcomes, _, err := rt.Totals(context.Background())
	if err != nil || outcomes["deliver"] != 2 {
		t.Fatalf("running totals %v %v", outcomes, err)
	}
}

// TestUsageCSVNameMatchesPage: the console's report page names the CSV it
// offers, and the console and the API serve it under that name, for the
// default period and for one calendar month.
func TestUsageCSVNameMatchesPage(t *testing.T) {
	e := start(t, nil)
	apw := addConsoleUser(t, e.gw.Store, "audrey", "auditor")
	tok := "sp_test_token_reports_0123456789"
	h := sha256.Sum256([]byte(tok))
	if err := e.gw.Store.AddAPIToken(context.Background(), &store.APIToken{Name: "reports", Hash: h[:], Scope: "read"}); err != nil {
		t.Fatal(err)
	}
	aud := newBrowser(t, e)
	aud.get("/console/login")
	if st, _ := aud.post("/console/login", url.Values{"user": {"audrey"}, "password": {apw}}); st != 200 {
		t.Fatalf("sign-in %d", st)
	}
	now := time.Now().UTC()
	from := report.DefaultFrom(now)
	defaultName := "usage-" + from.Format("2006-01-02") + "-" + now.Format("2006-01-02") + ".csv"
	linkRe := regexp.MustCompile(`<a id="csv" href="([^"]+)" download="([^"]+)">Download ([^<]+)</a>`)
	disposition := func(path string, bearer bool) string {
		t.Helper()
		req, _ := http.NewRequest("GET", aud.base+path, nil)
		if bearer {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		c := aud.c
		if bearer {
			c = http.DefaultClient
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		return resp.Header.Get("Content-Disposition")
	}
	for _, c := range []struct{ query, name, apiQuery string }{
		{"", defaultName, ""},
		{"?from=2026-11-01&to=2026-11-30", "usage-2026-11.csv", "&from=2026-11-01&to=2026-11-30"},
	} {
		_, page := aud.get("/console/reports" + c.query)
		m := linkRe.FindStringSubmatch(page)
		if m == nil || m[2] != c.name || m[3] != c.name {
			t.Fatalf("report page %q offers %q, want %s", c.query, m, c.name)
		}
		if c.query == "" && !strings.Contains(page, "From "+from.Format("2006-01-02")+" to "+now.Format("2006-01-02")+", both days included (by default this month and the 11 before it).") {
			t.Errorf("the page does not state its default period:\n%s", page)
		}
		want := `attachment; filename="` + c.name + `"`
		if got := disposition(strings.ReplaceAll(m[1], "&amp;", "&"), false); got != want {
			t.Errorf("console CSV %q, want %q", got, want)
		}
		if got := disposition("/api/reports/usage?format=csv"+c.apiQuery, true); got != want {
			t.Errorf("API CSV %q, want %q", got, want)
		}
	}
}
