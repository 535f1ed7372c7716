package portal

import (
	"context"
	"strings"
	"sync"

	"sealpost/internal/queue"
)

// SealForPreamble seals d for its recipients as Deliver does, but mails
// no notification: the recipient gets the message encrypted to their own
// key, with a plaintext preamble that carries links[i] (so a client that
// cannot decrypt still leads to the same message here). Recipients whose
// Rcpts entry in the attempt is not OK have no link and must not be sent
// the encrypted copy without one (the caller retries).
func (s *Service) SealForPreamble(ctx context.Context, d *queue.Delivery) ([]string, queue.Attempt) {
	att := queue.Attempt{Relay: "portal", Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
	links := make([]string, len(d.Rcpts))
	mu, _ := s.locks.LoadOrStore(d.Msg.ID, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	defer func() {
		mu.(*sync.Mutex).Unlock()
		s.locks.Delete(d.Msg.ID)
	}()
	sh := readHeader(d.Body, d.Size, d.Msg.ReceivedAt)
	answered, err := s.Answers(ctx, sh.h)
	if err != nil {
		s.failSealing(d, &att, nil, err)
		return links, att
	}
	for i, rc := range d.Rcpts {
		if err := s.deliverTo(ctx, d, sh, answered.Thread(rc), []int{i}, &att, links); err != nil {
			s.failSealing(d, &att, []int{i}, err)
		}
	}
	return links, att
}

// wayIn is how address reaches sealed message id from a mail: the link,
// or, where links are not mailed (portal.link_in_notice = false or the
// address's domain in portal.no_link_domains), the portal's address and the
// reference to type in there.
func (s *Service) wayIn(id, address string) string {
	cfg := s.Config()
	base := strings.TrimRight(cfg.Web.PublicURL, "/")
	if cfg.Portal.LinkInNotice && !noLink(cfg.Portal.NoLinkDomains, address) {
		return base + "/m/" + s.token(id, address)
	}
	return base + " (reference " + s.reference(id, address) + ")"
}
