package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"sealpost/internal/queue"
)

// preamble seals d into the portal for rcpt and returns the plaintext
// preamble of rcpt's encrypted copy, when rcpt's domain is one of
// encryption.preamble_domains ("never unreadable": a recipient whose client
// cannot decrypt still reads the same message in the portal). The sealing
// comes first: the copy leaves only once the link leads somewhere.
func (g *Gateway) preamble(ctx context.Context, d *queue.Delivery, rcpt string) (string, bool, error) {
	cfg := g.Config()
	if !cfg.Encryption.Preamble(strings.ToLower(domainOf(rcpt))) {
		return "", false, nil
	}
	if g.Portal == nil || !cfg.Portal.Enabled {
		return "", false, errors.New("the portal is off")
	}
	sub := &queue.Delivery{Msg: d.Msg, Route: queue.RoutePortal, Rcpts: []string{rcpt}, Body: d.Body, Size: d.Size}
	links, att := g.Portal.SealForPreamble(ctx, sub)
	if len(att.Rcpts) != 1 || !att.Rcpts[0].OK || links[0] == "" {
		why := "no result"
		if len(att.Rcpts) == 1 {
			why = att.Rcpts[0].Text
		}
		return "", false, fmt.Errorf("sealing: %s", why)
	}
	org := cfg.Org.Name
	if org == "" {
		org = "the sender's organisation"
	}
	return "This message is encrypted for you. If your mail program cannot open it,\n" +
		"read the same message in " + org + "'s secure portal:\n\n" + links[0] + "\n", true, nil
}
