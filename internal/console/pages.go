package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/report"
	"sealpost/internal/store"
	"sealpost/internal/trace"
	"sealpost/internal/web"
)

// chart is a server-drawn bar chart: an SVG whose rows carry their label
// and value as text, with a title that says it all for screen readers.
type chart struct {
	Title  string
	Bars   []bar
	Height int // of the viewBox
	Label  string
}

// bar is one row of a chart, in viewBox units (300 wide, 22 a row).
type bar struct {
	Label  string
	N      int
	Y      int // top of the row
	TextY  int // baseline of its texts
	Width  int // of the bar, 0..barMax
	ValueX int // where the value is written, after the bar
}

const (
	barX   = 150 // labels left of it, bars right
	barMax = 110
	rowH   = 22
)

// newChart draws m in the order given (only keys in order), or when order
// is nil by count, largest first, leaving out zeros.
func newChart(title string, m map[string]int, order []string) chart {
	keys := order
	if keys == nil {
		for k, v := range m {
			if v > 0 {
				keys = append(keys, k)
			}
		}
		sort.Slice(keys, func(i, j int) bool { return m[keys[i]] > m[keys[j]] || m[keys[i]] == m[keys[j]] && keys[i] < keys[j] })
	}
	most := 1
	for _, k := range keys {
		most = max(most, m[k])
	}
	c := chart{Title: title, Height: len(keys) * rowH}
	var said []string
	for i, k := range keys {
		w := m[k] * barMax / most
		c.Bars = append(c.Bars, bar{Label: k, N: m[k], Y: i * rowH, TextY: i*rowH + 15, Width: w, ValueX: barX + w + 6})
		said = append(said, fmt.Sprintf("%s %d", k, m[k]))
	}
	c.Label = title + ": " + strings.Join(said, ", ")
	return c
}

// actions lists the policy actions worth a row on the dashboard: those
// this gateway can carry out, and any other that has happened (a decision
// made before a transport was switched off).
func (s *Service) actions(counts map[string]int) []string {
	var out []string
	for _, name := range policy.ActionNames() {
		a, _ := policy.ParseAction(name)
		if counts[name] > 0 || s.Available == nil || s.Available(a) {
			out = append(out, name)
		}
	}
	return out
}

func (s *Service) dashboard(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	ctx := r.Context()
	now := time.Now()
	type period struct {
		Name                string
		Outcomes, Detectors chart
		Messages            int
		TLS, NoTLS          int
		Captured            int
		TLSShare            int
	}
	var periods []period
	for _, p := range []struct {
		name string
		d    time.Duration
	}{{"Last 24 hours", 24 * time.Hour}, {"Last 30 days", 30 * 24 * time.Hour}} {
		since := now.Add(-p.d)
		// The same count as /metrics and the usage report (report.Tally).
		t, err := report.Count(ctx, s.Store, since, now.Add(time.Millisecond))
		if err != nil {
			s.oops(w, err)
			return
		}
		tls, notls, captured, err := s.Store.DeliveryCounts(ctx, since, queue.DevOutboxRelay)
		if err != nil {
			s.oops(w, err)
			return
		}
		share := 0
		if tls+notls > 0 {
			share = tls * 100 / (tls + notls)
		}
		periods = append(periods, period{Name: p.name,
			Outcomes:  newChart("Messages by policy action, "+strings.ToLower(p.name), t.Outcomes, s.actions(t.Outcomes)),
			Detectors: newChart("DLP matches by detector, "+strings.ToLower(p.name), t.Matches, nil),
			Messages:  t.Messages(), TLS: tls, NoTLS: notls, Captured: captured, TLSShare: share})
	}
	depth, _ := s.Store.QueueDepth(ctx)
	held, _ := s.Store.CountDecisions(ctx, "held")
	quar, _ := s.Store.CountDecisions(ctx, "quarantined")
	s.page(w, http.StatusOK, "console_dashboard.html", map[string]any{"Title": "Console", "U": u, "CSRF": web.CSRFToken(w, r),
		"Periods": periods, "Queue": depth, "Held": held, "Quarantined": quar})
}

func (s *Service) trace(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	var from, to time.Time
	if v := r.URL.Query().Get("from"); v != "" {
		from, _ = time.Parse("2006-01-02", v)
	}
	if v := r.URL.Query().Get("to"); v != "" {
		if t, err := time.Parse("2006-01-02", v); err == nil {
			to = t.Add(24 * time.Hour)
		}
	}
	var found []*store.Message
	if q != "" || !from.IsZero() || !to.IsZero() {
		var err error
		if found, err = s.Store.SearchMessages(r.Context(), q, from, to, 200); err != nil {
			s.oops(w, err)
			return
		}
	}
	s.page(w, http.StatusOK, "console_trace.html", map[string]any{"Title": "Message trace", "U": u, "CSRF": web.CSRFToken(w, r), "Q": q,
		"From": r.URL.Query().Get("from"), "To": r.URL.Query().Get("to"), "Found": found, "Searched": q != "" || !from.IsZero() || !to.IsZero()})
}

func (s *Service) timeline(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	id := r.PathValue("id")
	t, err := trace.Build(r.Context(), s.Store, id)
	if errors.Is(err, store.ErrNotFound) {
		s.fail(w, http.StatusNotFound, "No such message", "It may have been delivered more than queue.keep_delivered ago. Search again from the trace page.")
		return
	}
	if err != nil {
		s.oops(w, err)
		return
	}
	s.page(w, http.StatusOK, "console_timeline.html", map[string]any{"Title": "Message " + id, "U": u, "CSRF": web.CSRFToken(w, r), "M": t.Message,
		"Events": t.Events, "Findings": t.Findings, "Evidence": s.Evidence != nil})
}

// isMessageID reports whether id looks like a queue message id (it goes
// into a header).
func isMessageID(id string) bool {
	if len(id) != 26 {
		return false
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return false
		}
	}
	return true
}

// evidence downloads a message's evidence bundle: its audit events with
// the signed checkpoints that prove them, checked anywhere with
// `sealpost audit verify --bundle FILE`.
func (s *Service) evidence(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	id := r.PathValue("id")
	if !isMessageID(id) {
		s.fail(w, http.StatusNotFound, "No such message", "Search again from the trace page.")
		return
	}
	if s.Evidence == nil {
		s.fail(w, http.StatusNotFound, "No evidence bundles here", "Use `sealpost audit evidence --message ID` on the gateway.")
		return
	}
	b, err := s.Evidence(r.Context(), id)
	if err != nil {
		s.Log.Warn("evidence bundle not written", "msgid", id, "err", err)
		s.fail(w, http.StatusConflict, "No evidence bundle for this message", err.Error())
		return
	}
	if err := s.audit(r, u.Name, "audit.evidence", id, "bundle downloaded"); err != nil {
		s.oops(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Disposition", `attachment; filename="evidence-`+id+`.json"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(b)
}

func (s *Service) held(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	ds, err := s.Store.Decisions(r.Context(), []string{"held", "quarantined"}, 500)
	if err != nil {
		s.oops(w, err)
		return
	}
	type row struct {
		D        *store.Decision
		Findings []string
		Reasons  []string
	}
	var rows []row
	for _, d := range ds {
		var pd policy.Decision
		json.Unmarshal([]byte(d.Detail), &pd)
		rw := row{D: d}
		for _, f := range pd.Findings {
			rw.Findings = append(rw.Findings, fmt.Sprintf("%s ×%d (%s) in %s", f.Detector, f.Count, f.Confidence, f.Where))
		}
		for _, rd := range pd.Recipients {
			if rd.Action == "hold" || rd.Action == "quarantine" {
				rw.Reasons = append(rw.Reasons, rd.Address+": "+strings.Join(rd.Reasons, "; "))
			}
		}
		rows = append(rows, rw)
	}
	s.page(w, http.StatusOK, "console_held.html", map[string]any{"Title": "Held and quarantined", "U": u, "CSRF": web.CSRFToken(w, r),
		"Rows": rows, "Admin": u.Role == "admin", "Done": r.URL.Query().Get("done")})
}

// adminPost checks a form POST that only admins may make.
func (s *Service) adminPost(w http.ResponseWriter, r *http.Request) (*store.User, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return nil, false
	}
	return s.need(w, r, "admin")
}

func (s *Service) resolve(w http.ResponseWriter, r *http.Request) {
	u, ok := s.adminPost(w, r)
	if !ok {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if reason == "" {
		s.fail(w, http.StatusUnprocessableEntity, "Give a reason", "Go back and write why you view, release or delete the message: it goes into the record.")
		return
	}
	var release bool
	switch action {
	case "view":
		s.viewHeld(w, r, u, id, reason)
		return
	case "release":
		release = true
	case "delete":
	default:
		s.fail(w, http.StatusNotFound, "No such action", "Go back to the list.")
		return
	}
	op, state := s.Ops.Delete, "deleted"
	if release {
		op, state = s.Ops.Release, "released"
	}
	_, err := op(r.Context(), s.actor(r, u), id, reason)
	switch {
	case errors.Is(err, ops.ErrResolved):
		s.fail(w, http.StatusConflict, "Already done", "Someone released, deleted or the sender resolved this message already. Go back to the list.")
		return
	case errors.Is(err, ops.ErrNotFound):
		s.fail(w, http.StatusNotFound, "No such message", "Go back to the list.")
		return
	case err != nil:
		s.opFailed(w, err)
		return
	}
	http.Redirect(w, r, "/console/held?done="+state, http.StatusSeeOther)
}

// period is the report period of the request: from and to are days, both
// included; by default report.DefaultFrom up to now.
func (s *Service) period(r *http.Request) (time.Time, time.Time) {
	to := time.Now()
	if t, err := time.Parse("2006-01-02", r.URL.Query().Get("to")); err == nil {
		to = t.Add(24 * time.Hour) // the day given is included
	}
	from := report.DefaultFrom(to)
	if t, err := time.Parse("2006-01-02", r.URL.Query().Get("from")); err == nil {
		from = t
	}
	return from, to
}

// usage builds the usage report for the request's period, answering the
// request itself when it cannot.
func (s *Service) usage(w http.ResponseWriter, r *http.Request) (*store.User, *report.Usage, time.Time, time.Time, bool) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return nil, nil, time.Time{}, time.Time{}, false
	}
	from, to := s.period(r)
	rep, err := report.Build(r.Context(), s.Store, from, to)
	if err != nil {
		s.oops(w, err)
		return nil, nil, from, to, false
	}
	return u, rep, from, to, true
}

func (s *Service) reports(w http.ResponseWriter, r *http.Request) {
	u, rep, from, to, ok := s.usage(w, r)
	if !ok {
		return
	}
	s.page(w, http.StatusOK, "console_reports.html", map[string]any{"Title": "Usage report", "U": u, "CSRF": web.CSRFToken(w, r), "R": rep,
		"From": from.UTC().Format("2006-01-02"), "To": report.LastDay(to), "CSVName": report.FileName(from, to), "Given": r.URL.Query().Get("from") != ""})
}

func (s *Service) reportCSV(w http.ResponseWriter, r *http.Request) {
	u, rep, from, to, ok := s.usage(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="`+report.FileName(from, to)+`"`)
	rep.CSV(w)
	s.audit(r, u.Name, "report.export", "usage", from.UTC().Format("2006-01-02")+" to "+report.LastDay(to))
}

func (s *Service) queuePage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	ms, err := s.Store.QueuedMessages(r.Context(), 500)
	if err != nil {
		s.oops(w, err)
		return
	}
	type row struct {
		M  *store.Message
		Rs []store.Recipient
	}
	var rows []row
	for _, m := range ms {
		rs, _ := s.Store.Recipients(r.Context(), m.ID)
		rows = append(rows, row{m, rs})
	}
	s.page(w, http.StatusOK, "console_queue.html", map[string]any{"Title": "Queue", "U": u, "CSRF": web.CSRFToken(w, r), "Rows": rows,
		"Admin": u.Role == "admin", "Done": r.URL.Query().Get("done")})
}

func (s *Service) queueAction(w http.ResponseWriter, r *http.Request) {
	u, ok := s.adminPost(w, r)
	if !ok {
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	var err error
	switch action {
	case "retry":
		err = s.Ops.Retry(r.Context(), s.actor(r, u), id)
	case "delete":
		err = s.Ops.DeleteQueued(r.Context(), s.actor(r, u), id)
	default:
		s.fail(w, http.StatusNotFound, "No such action", "Go back to the queue.")
		return
	}
	switch {
	case errors.Is(err, ops.ErrNothingQueued):
		s.fail(w, http.StatusNotFound, "Nothing to do", "The message has no recipients waiting any more. Go back to the queue.")
		return
	case err != nil:
		s.opFailed(w, err)
		return
	}
	http.Redirect(w, r, "/console/queue?done="+action, http.StatusSeeOther)
}

func (s *Service) policyPage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	s.page(w, http.StatusOK, "console_policy.html", map[string]any{"Title": "Policy", "U": u, "CSRF": web.CSRFToken(w, r), "Rules": s.Rules()})
}

func (s *Service) policyTest(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4<<20)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	msg := strings.ReplaceAll(strings.ReplaceAll(r.PostFormValue("message"), "\r\n", "\n"), "\n", "\r\n")
	var to []string
	for _, a := range strings.FieldsFunc(r.PostFormValue("to"), func(c rune) bool { return c == ',' || c == ' ' || c == '\n' || c == '\r' }) {
		to = append(to, a)
	}
	d, err := s.PolicyTest(r.Context(), []byte(msg), to)
	data := map[string]any{"Title": "Policy", "U": u, "CSRF": web.CSRFToken(w, r), "Rules": s.Rules(), "Message": r.PostFormValue("message"), "To": r.PostFormValue("to")}
	if err != nil {
		data["Problem"] = err.Error()
		s.page(w, http.StatusUnprocessableEntity, "console_policy.html", data)
		return
	}
	data["D"] = d
	s.page(w, http.StatusOK, "console_policy.html", data)
}

func (s *Service) keysPage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	data := map[string]any{"Title": "Keys and DNS", "U": u, "CSRF": web.CSRFToken(w, r)}
	if err := s.keysCommon(r, data); err != nil {
		s.oops(w, err)
		return
	}
	s.page(w, http.StatusOK, "console_keys.html", data)
}

func (s *Service) usersPage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin")
	if !ok {
		return
	}
	us, err := s.Store.Users(r.Context())
	if err != nil {
		s.oops(w, err)
		return
	}
	s.page(w, http.StatusOK, "console_users.html", map[string]any{"Title": "Users", "U": u, "CSRF": web.CSRFToken(w, r), "Users": us})
}

// actor is the signed-in user as ops records them.
func (s *Service) actor(r *http.Request, u *store.User) ops.Actor {
	return ops.Actor{Name: "admin:" + u.Name, IP: clientIP(r), UA: r.UserAgent()}
}

// opFailed answers an action that failed; one that was done but could not
// be recorded says so, since retrying it would not help.
func (s *Service) opFailed(w http.ResponseWriter, err error) {
	var ae *ops.AuditError
	if errors.As(err, &ae) {
		s.Log.Error("console action not recorded", "err", err)
		s.fail(w, http.StatusInternalServerError, "Done, but not recorded", "The action was carried out, but the audit log could not be written. Tell whoever runs the gateway: its log says why.")
		return
	}
	s.oops(w, err)
}
