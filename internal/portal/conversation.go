package portal

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"io"
	"strings"

	"github.com/microcosm-cc/bluemonday"

	"sealpost/internal/store"
)

// conversation is the model of the messages in t's conversation after the
// first: the reader's own replies and what the organisation answered them,
// oldest first. One recipient never sees another's.
func (s *Service) conversation(ctx context.Context, t *target) ([]map[string]any, error) {
	thread, err := s.Store.ThreadOf(ctx, t.m.ID, t.r.Address)
	if err != nil {
		return nil, err
	}
	var out []map[string]any
	for _, m := range thread {
		if m.State != "active" || m.WrappedKey == nil {
			continue
		}
		var pp Parts
		json.Unmarshal([]byte(m.Parts), &pp)
		mine := m.Sender == t.r.Address
		txt := ""
		switch {
		case pp.Text >= 0:
			txt, _, _ = s.bodyText(m, pp.Text)
		case pp.HTML >= 0:
			txt, _ = s.htmlText(m, pp.HTML)
		}
		if mine {
			txt = replyText(txt)
		}
		var files []map[string]any
		for _, a := range listed(pp.Attachments) {
			f := map[string]any{"Name": a.Name, "Size": a.Size}
			if !mine {
				f["Link"] = "/m/" + t.token + "/t/" + m.ID + "/a/" + itoa(a.Index)
			}
			files = append(files, f)
		}
		out = append(out, map[string]any{"ID": m.ID, "Mine": mine, "Who": displayName(m), "At": fmtTime(m.SentAt), "Text": txt, "Files": files})
	}
	return out, nil
}

// replyText is what the reader wrote: the text of their reply without the
// line the gateway put before it for the staff.
func replyText(txt string) string {
	txt = strings.ReplaceAll(txt, "\r\n", "\n")
	if _, rest, ok := strings.Cut(txt, "in the portal.\n\n"); ok {
		return strings.TrimRight(rest, "\n")
	}
	return txt
}

// inConversation returns message id of t's conversation if the reader may
// see it.
func (s *Service) inConversation(ctx context.Context, t *target, id string) (*store.Sealed, error) {
	m, err := s.Store.GetSealed(ctx, id)
	if err != nil {
		return nil, err
	}
	if m.ParentID != t.m.ID || m.State != "active" {
		return nil, store.ErrNotFound
	}
	if m.Sender == t.r.Address {
		return m, nil
	}
	rc, err := s.Store.SealedRecipient(ctx, id, t.r.Address)
	if err != nil {
		return nil, err
	}
	if rc.State != "active" {
		return nil, errors.New("withdrawn")
	}
	return m, nil
}

// htmlText is the text of an HTML body, every tag removed (an answer from
// a mail client that wrote no text part).
func (s *Service) htmlText(m *store.Sealed, index int) (string, error) {
	ra, size, done, err := s.open(m)
	if err != nil {
		return "", err
	}
	defer done()
	var text string
	walk(io.NewSectionReader(ra, 0, size), func(l *leaf) bool {
		if l.index == index {
			h, _ := decodeText(l, 2<<20)
			h = strings.NewReplacer("<br>", "\n", "<br/>", "\n", "<br />", "\n", "</p>", "\n\n", "</div>", "\n").Replace(h)
			text = strings.TrimSpace(html.UnescapeString(bluemonday.StrictPolicy().Sanitize(h)))
			return false
		}
		return true
	})
	return text, nil
}

// otherThan returns address unless it is what name shows already (a
// sender without a display name is named once, not twice).
func otherThan(address, name string) string {
	if strings.EqualFold(address, name) {
		return ""
	}
	return address
}
