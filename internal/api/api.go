// Package api is the REST API: what the console shows and does, as JSON,
// for operators' scripts. Clients authenticate with a bearer token made by
// `sealpost token add` (stored hashed; scope "read" for GET only, "admin"
// for everything). The OpenAPI 3.1 document is served at
// /api/openapi.json. Every change made through the API is an audit event.
package api

import (
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"sealpost/internal/audit"
	"sealpost/internal/dnscheck"
	"sealpost/internal/ops"
	"sealpost/internal/policy"
	"sealpost/internal/queue"
	"sealpost/internal/report"
	"sealpost/internal/store"
	"sealpost/internal/trace"
	"sealpost/internal/web"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI document.
func OpenAPI() []byte { return openAPI }

// Service is the API.
type Service struct {
	Store *store.Store
	Queue *queue.Queue
	Ops   *ops.Service // release, delete, retry: audited once
	Log   *slog.Logger
	// AuditVerify checks the audit log (store and witness).
	AuditVerify func(ctx context.Context) (*audit.Report, error)
	// Recorder appends audit events; nil: straight to the store.
	Recorder   *audit.Recorder
	Rules      func() []policy.Rule
	PolicyTest func(ctx context.Context, message []byte, to []string) (*policy.Decision, error)
	DNSRecords func() ([]dnscheck.Record, error)
}

// Routes mounts the API.
func (s *Service) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/openapi.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(openAPI)
	})
	h := func(scope string, f func(w http.ResponseWriter, r *http.Request, t *store.APIToken)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			t, ok := s.token(w, r, scope)
			if ok {
				f(w, r, t)
			}
		}
	}
	mux.HandleFunc("GET /api/messages", h("read", s.messages))
	mux.HandleFunc("GET /api/messages/{id}", h("read", s.message))
	mux.HandleFunc("GET /api/queue", h("read", s.queueList))
	mux.HandleFunc("POST /api/queue/{id}/retry", h("admin", s.retry))
	mux.HandleFunc("DELETE /api/queue/{id}", h("admin", s.deleteQueued))
	mux.HandleFunc("GET /api/quarantine", h("read", s.quarantine))
	mux.HandleFunc("POST /api/quarantine/{id}/release", h("admin", s.resolve(true)))
	mux.HandleFunc("POST /api/quarantine/{id}/delete", h("admin", s.resolve(false)))
	mux.HandleFunc("GET /api/policy/rules", h("read", s.rules))
	mux.HandleFunc("POST /api/policy/test", h("read", s.policyTest))
	mux.HandleFunc("GET /api/reports/usage", h("read", s.usage))
	mux.HandleFunc("GET /api/audit/events", h("read", s.auditEvents))
	mux.HandleFunc("GET /api/audit/verify", h("read", s.auditVerify))
	mux.HandleFunc("GET /api/dns/records", h("read", s.dnsRecords))
	mux.HandleFunc("GET /api/users", h("read", s.users))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		fail(w, http.StatusNotFound, "no such endpoint; see /api/openapi.json")
	})
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	reply(w, status, map[string]string{"error": msg})
}

func (s *Service) token(w http.ResponseWriter, r *http.Request, scope string) (*store.APIToken, bool) {
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || len(tok) < 20 {
		// The realm names no product (RFC 6750 §3: any string will do).
		w.Header().Set("WWW-Authenticate", `Bearer realm="api"`)
		fail(w, http.StatusUnauthorized, "send a token: Authorization: Bearer TOKEN (an operator makes one with the `token add` command)")
		return nil, false
	}
	h := sha256.Sum256([]byte(tok))
	t, err := s.Store.APITokenByHash(r.Context(), h[:])
	if err != nil || t.Disabled {
		fail(w, http.StatusUnauthorized, "the token is not valid (revoked, or mistyped)")
		return nil, false
	}
	if scope == "admin" && t.Scope != "admin" {
		fail(w, http.StatusForbidden, "this token may only read; this needs an admin token")
		return nil, false
	}
	return t, true
}

// TokenValid reports whether r carries a live API token of any scope (it
// also opens /metrics and the OpenAPI document to monitoring elsewhere).
func (s *Service) TokenValid(r *http.Request) bool {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || len(tok) < 20 {
		return false
	}
	h := sha256.Sum256([]byte(tok))
	t, err := s.Store.APITokenByHash(r.Context(), h[:])
	return err == nil && !t.Disabled
}

func (s *Service) oops(w http.ResponseWriter, err error) {
	s.Log.Error("api request failed", "err", err)
	fail(w, http.StatusServiceUnavailable, "the gateway could not do this now; try again")
}

// audit records what a token did. An event the store refuses is kept by
// the recorder and appended later; the error means it is lost, which the
// caller must answer with a failure.
func (s *Service) audit(r *http.Request, t *store.APIToken, action, object, detail string) error {
	e := &store.AuditEvent{At: time.Now(), Actor: "api:" + t.Name, Action: action, Object: object, IP: web.ClientIP(r), Detail: detail}
	err := audit.Record(r.Context(), s.Recorder, s.Store, e)
	if err != nil {
		s.Log.Error("audit event not recorded", "action", action, "err", err)
	}
	return err
}

// Message is a message in API answers.
type Message struct {
	ID         string      `json:"id"`
	Direction  string      `json:"direction"`
	From       string      `json:"from"`
	Subject    string      `json:"subject"`
	ReceivedAt time.Time   `json:"received_at"`
	Size       int64       `json:"size"`
	State      string      `json:"state"`
	Recipients []Recipient `json:"recipients,omitempty"`
}

// Recipient is one recipient's delivery state.
type Recipient struct {
	Address   string `json:"address"`
	Route     string `json:"route"`
	Status    string `json:"status"`
	Attempts  int    `json:"attempts"`
	LastError string `json:"last_error,omitempty"`
	TLS       string `json:"tls,omitempty"`
	Relay     string `json:"relay,omitempty"`
}

func toMessage(m *store.Message, rs []store.Recipient) Message {
	out := Message{ID: m.ID, Direction: m.Direction, From: m.MailFrom, Subject: m.Subject, ReceivedAt: m.ReceivedAt.UTC(), Size: m.Size, State: m.State}
	for _, r := range rs {
		out.Recipients = append(out.Recipients, Recipient{r.Rcpt, r.Route, r.Status, r.Attempts, r.LastError, r.TLS, r.Relay})
	}
	return out
}

func parseDay(v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err == nil && end {
		t = t.Add(24 * time.Hour)
	}
	return t, err
}

// period reads the from and to parameters (to is inclusive for a date),
// answering the request itself when they are wrong.
func period(w http.ResponseWriter, r *http.Request) (from, to time.Time, ok bool) {
	from, err1 := parseDay(r.URL.Query().Get("from"), false)
	to, err2 := parseDay(r.URL.Query().Get("to"), true)
	if err1 != nil || err2 != nil {
		fail(w, http.StatusBadRequest, "from and to are dates (2026-11-26) or RFC 3339 times")
		return from, to, false
	}
	return from, to, true
}

func (s *Service) messages(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	from, to, ok := period(w, r)
	if !ok {
		return
	}
	ms, err := s.Store.SearchMessages(r.Context(), r.URL.Query().Get("q"), from, to, 500)
	if err != nil {
		s.oops(w, err)
		return
	}
	out := []Message{}
	for _, m := range ms {
		out = append(out, toMessage(m, nil))
	}
	reply(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Service) message(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	t, err := trace.Build(r.Context(), s.Store, r.PathValue("id"))
	if errors.Is(err, store.ErrNotFound) {
		fail(w, http.StatusNotFound, "no such message (finished messages are kept for queue.keep_delivered)")
		return
	}
	if err != nil {
		s.oops(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"message": toMessage(t.Message, t.Recipients), "decision": t.Decision, "findings": t.Findings, "events": t.Events})
}

func (s *Service) queueList(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	ms, err := s.Store.QueuedMessages(r.Context(), 1000)
	if err != nil {
		s.oops(w, err)
		return
	}
	out := []Message{}
	for _, m := range ms {
		rs, _ := s.Store.Recipients(r.Context(), m.ID)
		out = append(out, toMessage(m, rs))
	}
	reply(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Service) retry(w http.ResponseWriter, r *http.Request, t *store.APIToken) {
	s.queueOp(w, r, "retry", s.Ops.Retry(r.Context(), actor(r, t), r.PathValue("id")))
}

func (s *Service) deleteQueued(w http.ResponseWriter, r *http.Request, t *store.APIToken) {
	s.queueOp(w, r, "delete", s.Ops.DeleteQueued(r.Context(), actor(r, t), r.PathValue("id")))
}

// queueOp answers a retry or delete of the queued recipients of a message.
func (s *Service) queueOp(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch {
	case errors.Is(err, ops.ErrNothingQueued):
		fail(w, http.StatusNotFound, "no queued recipients for that message")
		return
	case err != nil:
		s.opFailed(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "action": op})
}

// actor is the token as ops records it.
func actor(r *http.Request, t *store.APIToken) ops.Actor {
	return ops.Actor{Name: "api:" + t.Name, IP: r.RemoteAddr, UA: r.UserAgent()}
}

// opFailed answers an action that failed; one that was done but could not
// be recorded says so, since retrying it would not help.
func (s *Service) opFailed(w http.ResponseWriter, err error) {
	var ae *ops.AuditError
	if errors.As(err, &ae) {
		s.Log.Error("api action not recorded", "err", err)
		fail(w, http.StatusInternalServerError, "done, but the audit log could not be written; the gateway's log says why")
		return
	}
	s.oops(w, err)
}

// Held is a held or quarantined message.
type Held struct {
	ID             string                     `json:"id"`
	State          string                     `json:"state"`
	From           string                     `json:"from"`
	Subject        string                     `json:"subject"`
	Classification string                     `json:"classification"`
	CreatedAt      time.Time                  `json:"created_at"`
	ExpiresAt      time.Time                  `json:"expires_at"`
	Findings       any                        `json:"findings"`
	Recipients     []policy.RecipientDecision `json:"recipients"`
}

func (s *Service) quarantine(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	ds, err := s.Store.Decisions(r.Context(), []string{"held", "quarantined"}, 1000)
	if err != nil {
		s.oops(w, err)
		return
	}
	out := []Held{}
	for _, d := range ds {
		var pd policy.Decision
		json.Unmarshal([]byte(d.Detail), &pd)
		out = append(out, Held{d.MsgID, d.State, d.MailFrom, d.Subject, d.Classification, d.CreatedAt.UTC(), d.ExpiresAt.UTC(), pd.Findings, pd.Recipients})
	}
	reply(w, http.StatusOK, map[string]any{"messages": out})
}

func (s *Service) resolve(release bool) func(w http.ResponseWriter, r *http.Request, t *store.APIToken) {
	return func(w http.ResponseWriter, r *http.Request, t *store.APIToken) {
		var body struct {
			Reason string `json:"reason"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&body); err != nil || strings.TrimSpace(body.Reason) == "" {
			fail(w, http.StatusBadRequest, `send {"reason": "why"}: the reason goes into the record`)
			return
		}
		id := r.PathValue("id")
		op := s.Ops.Delete
		if release {
			op = s.Ops.Release
		}
		res, err := op(r.Context(), actor(r, t), id, body.Reason)
		switch {
		case errors.Is(err, ops.ErrNotFound):
			fail(w, http.StatusNotFound, "no held or quarantined message with that id")
			return
		case errors.Is(err, ops.ErrResolved):
			fail(w, http.StatusConflict, "already released, deleted or expired")
			return
		case err != nil:
			s.opFailed(w, err)
			return
		}
		state, rcpts := res.State, res.Recipients
		reply(w, http.StatusOK, map[string]any{"id": id, "state": state, "recipients": rcpts})
	}
}

func (s *Service) rules(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	type rule struct {
		Name   string `json:"name"`
		When   string `json:"when"`
		Action string `json:"action"`
		Reason string `json:"reason"`
	}
	out := []rule{}
	for _, x := range s.Rules() {
		out = append(out, rule{x.Name, x.When, x.Action, x.Reason})
	}
	reply(w, http.StatusOK, map[string]any{"rules": out})
}

func (s *Service) policyTest(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	data, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil || len(data) == 0 {
		fail(w, http.StatusBadRequest, "send the message (RFC 5322, message/rfc822) as the request body")
		return
	}
	d, err := s.PolicyTest(r.Context(), data, r.URL.Query()["to"])
	if err != nil {
		fail(w, http.StatusBadRequest, err.Error())
		return
	}
	reply(w, http.StatusOK, d)
}

func (s *Service) usage(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	from, to, ok := period(w, r)
	if !ok {
		return
	}
	if to.IsZero() {
		to = time.Now()
	}
	if from.IsZero() {
		from = report.DefaultFrom(to)
	}
	u, err := report.Build(r.Context(), s.Store, from, to)
	if err != nil {
		s.oops(w, err)
		return
	}
	if r.URL.Query().Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="`+report.FileName(from, to)+`"`)
		u.CSV(w)
		return
	}
	reply(w, http.StatusOK, u)
}

func (s *Service) auditEvents(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	from, to, ok := period(w, r)
	if !ok {
		return
	}
	type ev struct {
		Seq    int64     `json:"seq"`
		At     time.Time `json:"at"`
		Actor  string    `json:"actor"`
		Action string    `json:"action"`
		Object string    `json:"object"`
		IP     string    `json:"ip"`
		Detail string    `json:"detail"`
	}
	out := []ev{}
	err := s.Store.EachAuditEvent(r.Context(), from, to, func(e *store.AuditEvent) error {
		if len(out) >= 10000 {
			return errors.New("too many")
		}
		out = append(out, ev{e.Seq, e.At.UTC(), e.Actor, e.Action, e.Object, e.IP, e.Detail})
		return nil
	})
	if err != nil && err.Error() != "too many" {
		s.oops(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"events": out, "truncated": err != nil})
}

func (s *Service) auditVerify(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	rep, err := s.AuditVerify(r.Context())
	if err != nil {
		s.oops(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"ok": rep.OK(), "events": rep.Events, "checkpoints": rep.Checkpoints, "last_signed": rep.LastSigned, "first_bad": rep.BadSeq, "problem": rep.Why})
}

func (s *Service) dnsRecords(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	recs, err := s.DNSRecords()
	if err != nil {
		s.oops(w, err)
		return
	}
	reply(w, http.StatusOK, map[string]any{"records": recs})
}

func (s *Service) users(w http.ResponseWriter, r *http.Request, _ *store.APIToken) {
	us, err := s.Store.Users(r.Context())
	if err != nil {
		s.oops(w, err)
		return
	}
	type user struct {
		Name     string    `json:"name"`
		Role     string    `json:"role"`
		Disabled bool      `json:"disabled"`
		Created  time.Time `json:"created_at"`
	}
	out := []user{}
	for _, u := range us {
		out = append(out, user{u.Name, u.Role, u.Disabled, u.CreatedAt.UTC()})
	}
	reply(w, http.StatusOK, map[string]any{"users": out})
}
