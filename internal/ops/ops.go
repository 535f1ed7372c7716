// Package ops is every operator and sender action that changes a message's
// fate, written once: release or delete a held or quarantined message,
// retry or delete a queued one, a sender confirming or cancelling a hold
// through the link in the notice, and a hold or quarantine running out.
//
// The console, the REST API, the command line (through the gateway's control
// socket, see control.go) and the hold pages all call this Service, so each
// action writes its audit event exactly once, frees its spool bytes exactly
// once (the queue does that as part of the state change) and counts in the
// metrics the same way whoever asked. No surface changes these rows in the
// store itself.
//
// An action whose audit event cannot be recorded returns an error: the state
// change stands (it is already committed), but the caller learns that the
// record is missing instead of a silent gap in the log.
package ops

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"sealpost/internal/metrics"
	"sealpost/internal/store"
)

// Queue is what the actions need of the delivery queue. *queue.Queue
// implements it; every method frees the spool bytes of a message that has
// nothing left to deliver.
type Queue interface {
	Resolve(ctx context.Context, id string, release bool, state, by, reason string) ([]string, error)
	RetryNow(ctx context.Context, id string) (bool, error)
	DeleteQueued(ctx context.Context, id string) (bool, error)
}

// Decisions reads the policy decision of a held or quarantined message.
type Decisions interface {
	GetDecision(ctx context.Context, id string) (*store.Decision, error)
}

// AuditFunc appends one event to the audit log. It is injected so that the
// gateway decides how events are recorded (chained, witnessed, retried).
type AuditFunc func(ctx context.Context, e *store.AuditEvent) error

// Errors the actions return; surfaces turn them into their own answers.
var (
	// ErrNotFound: no held, quarantined or queued message with that id.
	ErrNotFound = store.ErrNotFound
	// ErrResolved: the message was already released, deleted, cancelled
	// or expired.
	ErrResolved = store.ErrResolved
	// ErrNothingQueued: the message has no recipient waiting for delivery.
	ErrNothingQueued = errors.New("nothing waiting for delivery")
)

// AuditError says the action was done but its audit event was not recorded.
type AuditError struct {
	Action string
	Err    error
}

func (e *AuditError) Error() string {
	return fmt.Sprintf("%s done, but its audit event was not recorded: %v", e.Action, e.Err)
}

func (e *AuditError) Unwrap() error { return e.Err }

// Actor is who asks: "admin:NAME", "api:TOKEN", "cli:USER", a sender's
// address, or "gateway"; with the client's address and user agent for the
// audit record when a browser or API client asks.
type Actor struct {
	Name string
	IP   string
	UA   string
}

// Service performs the actions.
type Service struct {
	Queue     Queue
	Decisions Decisions
	Audit     AuditFunc
	Metrics   *metrics.Metrics // may be nil (command line without a gateway)
	Log       *slog.Logger
	Now       func() time.Time // nil: time.Now
}

// Resolution is the outcome of releasing or deleting a held or quarantined
// message.
type Resolution struct {
	ID         string   `json:"id"`
	State      string   `json:"state"`      // released, deleted, cancelled, expired
	Recipients []string `json:"recipients"` // the recipients that were waiting
}

// Release sends a held or quarantined message (operator decision).
func (s *Service) Release(ctx context.Context, a Actor, id, reason string) (*Resolution, error) {
	return s.resolve(ctx, a, id, true, "released", "released", reason, "quarantine.released")
}

// Delete drops a held or quarantined message (operator decision).
func (s *Service) Delete(ctx context.Context, a Actor, id, reason string) (*Resolution, error) {
	return s.resolve(ctx, a, id, false, "deleted", "deleted", reason, "quarantine.deleted")
}

// ResolveHold is the sender's answer through the signed link in the hold
// notice: send (confirm) or cancel. The caller has checked the link.
func (s *Service) ResolveHold(ctx context.Context, id string, send bool) (*Resolution, error) {
	rec, err := s.Decisions.GetDecision(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec.State != "held" {
		return nil, ErrResolved
	}
	state, result := "cancelled", "cancelled"
	if send {
		state, result = "released", "confirmed"
	}
	res, err := s.resolveAs(ctx, Actor{Name: rec.MailFrom}, "sender", id, send, state, result, result+" by the sender", "hold."+result, "through the link in the notice")
	return res, err
}

// Expire ends a hold nobody confirmed or a quarantine nobody released in
// time; how says which limit ran out.
func (s *Service) Expire(ctx context.Context, id, how string) (*Resolution, *store.Decision, error) {
	rec, err := s.Decisions.GetDecision(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	res, err := s.resolveAs(ctx, Actor{Name: "gateway"}, "gateway", id, false, "expired", "expired", how, rec.State+".expired", how)
	return res, rec, err
}

func (s *Service) resolve(ctx context.Context, a Actor, id string, release bool, state, result, reason, action string) (*Resolution, error) {
	return s.resolveAs(ctx, a, a.Name, id, release, state, result, reason, action, reason)
}

// resolveAs does the state change (queue.Resolve frees the spool bytes of
// a finished message and wakes the workers for a released one), then the
// metric, the log line and the audit event.
func (s *Service) resolveAs(ctx context.Context, a Actor, by, id string, release bool, state, result, reason, action, detail string) (*Resolution, error) {
	rcpts, err := s.Queue.Resolve(ctx, id, release, state, by, reason)
	if err != nil {
		return nil, err
	}
	if s.Metrics != nil {
		s.Metrics.Holds.WithLabelValues(result).Inc()
	}
	s.log().Info("held message "+result, "msgid", id, "by", by, "recipients", len(rcpts))
	res := &Resolution{ID: id, State: state, Recipients: rcpts}
	if res.Recipients == nil {
		res.Recipients = []string{}
	}
	return res, s.audit(ctx, a, action, id, detail)
}

// Retry makes the waiting recipients of a queued message due now.
func (s *Service) Retry(ctx context.Context, a Actor, id string) error {
	ok, err := s.Queue.RetryNow(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNothingQueued
	}
	return s.audit(ctx, a, "queue.retry", id, "")
}

// DeleteQueued stops delivering a queued message (no bounce is sent).
func (s *Service) DeleteQueued(ctx context.Context, a Actor, id string) error {
	ok, err := s.Queue.DeleteQueued(ctx, id)
	if err != nil {
		return err
	}
	if !ok {
		return ErrNothingQueued
	}
	s.log().Info("queued message deleted", "msgid", id, "by", a.Name)
	return s.audit(ctx, a, "queue.delete", id, "")
}

func (s *Service) audit(ctx context.Context, a Actor, action, object, detail string) error {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	ua := a.UA
	if len(ua) > 200 {
		ua = ua[:200]
	}
	e := &store.AuditEvent{At: now(), Actor: a.Name, Action: action, Object: object, IP: a.IP, UA: ua, Detail: detail}
	if err := s.Audit(ctx, e); err != nil {
		s.log().Error("audit event not recorded", "action", action, "object", object, "err", err)
		return &AuditError{Action: action, Err: err}
	}
	return nil
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}
