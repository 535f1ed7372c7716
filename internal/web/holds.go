package web

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// Holds is what the hold pages need from the gateway.
type Holds interface {
	// Hold returns the held message id if token signs it.
	Hold(ctx context.Context, id, token string) (*HoldView, error)
	// Resolve confirms (sends) or cancels a held message.
	Resolve(ctx context.Context, id, token string, confirm bool) (*HoldView, error)
}

// ErrBadLink: the link is not one the gateway made.
var ErrBadLink = errors.New("invalid link")

// HoldView is a held message as its sender sees it.
type HoldView struct {
	ID         string
	Subject    string
	State      string // held, released, cancelled, expired, quarantined, deleted
	Created    time.Time
	Expires    time.Time
	Token      string
	Findings   []string
	Recipients []HoldRecipient
}

// HoldRecipient is one recipient the message waits for.
type HoldRecipient struct {
	Address string
	Reasons []string
	Then    string // how it goes once confirmed, if not as usual
}

func (s *Server) holdPage(w http.ResponseWriter, r *http.Request) {
	v, err := s.Holds.Hold(r.Context(), r.PathValue("id"), r.URL.Query().Get("t"))
	if err != nil {
		s.holdError(w, err)
		return
	}
	s.render(w, http.StatusOK, "hold.html", map[string]any{"Org": s.OrgName, "V": v, "Do": r.URL.Query().Get("do"), "CSRF": csrfToken(w, r)})
}

func (s *Server) holdPost(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 8<<10)
	if !csrfOK(r) {
		s.errorPage(w, http.StatusForbidden, "This form has expired", "Open the link in your notification again and press the button once more.")
		return
	}
	var confirm bool
	switch r.PostFormValue("action") {
	case "confirm":
		confirm = true
	case "cancel":
	default:
		s.errorPage(w, http.StatusBadRequest, "Choose send or cancel", "Open the link in your notification again and press one of the two buttons.")
		return
	}
	v, err := s.Holds.Resolve(r.Context(), r.PathValue("id"), r.PostFormValue("t"), confirm)
	if err != nil {
		s.holdError(w, err)
		return
	}
	s.render(w, http.StatusOK, "hold.html", map[string]any{"Org": s.OrgName, "V": v, "Done": true})
}

func (s *Server) holdError(w http.ResponseWriter, err error) {
	if errors.Is(err, ErrBadLink) {
		s.errorPage(w, http.StatusNotFound, "This link is not valid", "Copy the whole link from your notification mail into the address bar. If it still fails, ask your IT service desk and quote the reference from the mail.")
		return
	}
	s.Log.Error("hold page failed", "err", err)
	s.errorPage(w, http.StatusServiceUnavailable, "Something went wrong on our side", "Nothing was sent or cancelled. Try again in a few minutes.")
}
