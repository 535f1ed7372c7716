package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// The control socket. While `serve` runs it holds the data directory's
// lock, so the command line cannot open the queue itself to release or
// delete mail; it asks the gateway instead, over a Unix socket in the data
// directory (ControlSocket, mode 0600, in a directory of mode 0700). The
// gateway does the action through the same Service as every other surface,
// so spool bytes, metrics and the audit record are right.
//
// The protocol is HTTP/1.1 over the socket with small JSON bodies:
//
//	POST /v1/quarantine/{id}/release  {"reason": "…"}  -> Resolution
//	POST /v1/quarantine/{id}/delete   {"reason": "…"}  -> Resolution
//	POST /v1/queue/{id}/retry                          -> {"id": "…"}
//	POST /v1/queue/{id}/delete                         -> {"id": "…"}
//
// Errors are {"error": "…", "code": "not_found|resolved|nothing_queued|audit|bad_request|failed"}.
// The actor in the audit record is not taken from the request: the gateway
// names it from the connecting process's user (SO_PEERCRED), "cli:USER".

// ControlSocket is the name of the control socket in the data directory.
const ControlSocket = "control.sock"

// Operator is the set of actions the command line needs; *Service does
// them in process, *Client asks a running gateway.
type Operator interface {
	Release(ctx context.Context, a Actor, id, reason string) (*Resolution, error)
	Delete(ctx context.Context, a Actor, id, reason string) (*Resolution, error)
	Retry(ctx context.Context, a Actor, id string) error
	DeleteQueued(ctx context.Context, a Actor, id string) error
}

type peerKey struct{}

// WithPeer records the connecting process's actor name in a connection's
// context (the gateway sets it from the socket's peer credentials).
func WithPeer(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, peerKey{}, actor)
}

func peer(ctx context.Context) string {
	if s, ok := ctx.Value(peerKey{}).(string); ok && s != "" {
		return s
	}
	return "cli"
}

type controlError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// ControlHandler serves the control protocol over s.
func ControlHandler(s *Service) http.Handler {
	mux := http.NewServeMux()
	resolve := func(release bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			var body struct {
				Reason string `json:"reason"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 8<<10)).Decode(&body); err != nil || strings.TrimSpace(body.Reason) == "" {
				writeJSON(w, http.StatusBadRequest, controlError{"a reason is needed", "bad_request"})
				return
			}
			a := Actor{Name: peer(r.Context())}
			op := s.Delete
			if release {
				op = s.Release
			}
			res, err := op(r.Context(), a, r.PathValue("id"), body.Reason)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, res)
		}
	}
	queueOp := func(retry bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			a := Actor{Name: peer(r.Context())}
			op := s.DeleteQueued
			if retry {
				op = s.Retry
			}
			if err := op(r.Context(), a, r.PathValue("id")); err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, map[string]string{"id": r.PathValue("id")})
		}
	}
	mux.HandleFunc("POST /v1/quarantine/{id}/release", resolve(true))
	mux.HandleFunc("POST /v1/quarantine/{id}/delete", resolve(false))
	mux.HandleFunc("POST /v1/queue/{id}/retry", queueOp(true))
	mux.HandleFunc("POST /v1/queue/{id}/delete", queueOp(false))
	return mux
}

func writeError(w http.ResponseWriter, err error) {
	var ae *AuditError
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, controlError{err.Error(), "not_found"})
	case errors.Is(err, ErrResolved):
		writeJSON(w, http.StatusConflict, controlError{err.Error(), "resolved"})
	case errors.Is(err, ErrNothingQueued):
		writeJSON(w, http.StatusNotFound, controlError{err.Error(), "nothing_queued"})
	case errors.As(err, &ae):
		writeJSON(w, http.StatusInternalServerError, controlError{err.Error(), "audit"})
	default:
		writeJSON(w, http.StatusInternalServerError, controlError{err.Error(), "failed"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// Client asks the gateway listening on a control socket. The Actor passed
// to its methods is ignored: the gateway names the caller itself.
type Client struct {
	Path string // the socket
	http *http.Client
}

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{Path: path, http: &http.Client{
		Timeout: time.Minute,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Ping reports whether a gateway answers on the socket.
func (c *Client) Ping(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Path)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *Client) Release(ctx context.Context, _ Actor, id, reason string) (*Resolution, error) {
	return c.resolve(ctx, "release", id, reason)
}

func (c *Client) Delete(ctx context.Context, _ Actor, id, reason string) (*Resolution, error) {
	return c.resolve(ctx, "delete", id, reason)
}

func (c *Client) Retry(ctx context.Context, _ Actor, id string) error {
	return c.do(ctx, "/v1/queue/"+url.PathEscape(id)+"/retry", nil, nil)
}

func (c *Client) DeleteQueued(ctx context.Context, _ Actor, id string) error {
	return c.do(ctx, "/v1/queue/"+url.PathEscape(id)+"/delete", nil, nil)
}

func (c *Client) resolve(ctx context.Context, op, id, reason string) (*Resolution, error) {
	var res Resolution
	if err := c.do(ctx, "/v1/quarantine/"+url.PathEscape(id)+"/"+op, map[string]string{"reason": reason}, &res); err != nil {
		return nil, err
	}
	return &res, nil
}

func (c *Client) do(ctx context.Context, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://gateway"+path, strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("the running gateway did not answer on %s: %w", c.Path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if out == nil {
			return nil
		}
		return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	var ce controlError
	json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&ce)
	switch ce.Code {
	case "not_found":
		return ErrNotFound
	case "resolved":
		return ErrResolved
	case "nothing_queued":
		return ErrNothingQueued
	}
	if ce.Error == "" {
		ce.Error = resp.Status
	}
	return fmt.Errorf("the running gateway: %s", ce.Error)
}

// Listen opens the control socket at path, replacing a stale one (the
// caller holds the data directory's lock, so no other gateway uses it).
func Listen(path string) (net.Listener, error) {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}
