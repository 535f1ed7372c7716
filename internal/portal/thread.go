package portal

// Secure conversations. A recipient's reply reaches the sender as an
// ordinary mail, threaded to the sealed message (RFC 5322 §3.6.4: its
// In-Reply-To and References name the message it answers), from the
// recipient's name via the organisation's no-reply address, with Reply-To
// the recipient. So staff answer it from Outlook or Gmail as they answer
// any mail: to the recipient's address, with the reply's Message-ID in
// In-Reply-To and References.
//
// That answer must not leave in plaintext: it quotes the sealed thread. So
// every Message-ID the portal issues carries a thread token,
//
//	<ROOT.MAC.RANDOM@smtp.hostname>
//
// where ROOT is the sealed message the conversation hangs on and MAC an
// HMAC of (ROOT, recipient address) under the portal's token key: it
// cannot be guessed or moved to another conversation or recipient. The
// gateway looks for such tokens in the In-Reply-To and References of every
// outbound message; one that verifies makes message.portal_thread true, and
// recipient.portal_thread true for the recipient it is bound to while that
// recipient may still read the conversation. The built-in policy seals such
// a message into the portal, and the portal transport, checking the token
// again, seals it into that recipient's conversation and notifies them, once
// per new message.

import (
	"bufio"
	"context"
	"crypto/hmac"
	"errors"
	"io"
	"net/mail"
	"strings"
	"time"

	"sealpost/internal/store"
)

// maxThreadRefs bounds how many message ids of one message are checked
// (each costs a database lookup).
const maxThreadRefs = 32

func (s *Service) threadMAC(root, address string) string {
	return idEncoding.EncodeToString(s.mac("thread", root, strings.ToLower(address))[:15])
}

// threadMessageID is a new Message-ID (without angle brackets) in root's
// conversation with address.
func (s *Service) threadMessageID(root, address, host string) string {
	return root + "." + s.threadMAC(root, address) + "." + randomID()[:12] + "@" + host
}

// msgIDs returns the message ids (RFC 5322 §3.6.4 msg-id, without the
// angle brackets) in a header field value, dropping any that could not be
// written back into a header as they are.
func msgIDs(v string) []string {
	var out []string
	for {
		i := strings.IndexByte(v, '<')
		if i < 0 {
			return out
		}
		v = v[i+1:]
		j := strings.IndexByte(v, '>')
		if j < 0 {
			return out
		}
		if id := v[:j]; safeMsgID(id) {
			out = append(out, id)
		}
		v = v[j+1:]
	}
}

// safeMsgID: printable ASCII, no space or angle bracket, one "@", short.
func safeMsgID(id string) bool {
	if len(id) < 3 || len(id) > 250 || strings.Count(id, "@") != 1 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c >= 0x7f || c == '<' || c == '>' {
			return false
		}
	}
	return true
}

// threadCandidate splits a portal-issued message id into its root and MAC.
func threadCandidate(id string) (root, mac string, ok bool) {
	local, _, _ := strings.Cut(id, "@")
	parts := strings.Split(local, ".")
	if len(parts) != 3 || len(parts[0]) != 26 || len(parts[1]) != 24 {
		return "", "", false
	}
	for _, p := range parts[:2] {
		if _, err := idEncoding.DecodeString(p); err != nil {
			return "", "", false
		}
	}
	return parts[0], parts[1], true
}

// Answered is what the In-Reply-To and References of a message say about
// the portal's conversations: the thread tokens that verify.
type Answered struct {
	// party: recipient address → the root of the conversation whose token
	// is bound to that address, when the address may still read it.
	party map[string]string
	any   bool
}

// Any reports whether the message answers some portal conversation.
func (a *Answered) Any() bool { return a != nil && a.any }

// Thread returns the root of the conversation of rcpt that the message
// answers, or "".
func (a *Answered) Thread(rcpt string) string {
	if a == nil {
		return ""
	}
	return a.party[strings.ToLower(rcpt)]
}

// Answers checks the In-Reply-To and References of h (nil: none) for thread
// tokens. A store failure is returned, not taken for "no conversation".
func (s *Service) Answers(ctx context.Context, h mail.Header) (*Answered, error) {
	a := &Answered{party: map[string]string{}}
	if h == nil {
		return a, nil
	}
	ids := append(msgIDs(h.Get("In-Reply-To")), msgIDs(h.Get("References"))...)
	seen := map[string]bool{}
	checked := 0
	for _, id := range ids {
		root, mac, ok := threadCandidate(id)
		if !ok || seen[root+mac] {
			continue
		}
		seen[root+mac] = true
		if checked++; checked > maxThreadRefs {
			break
		}
		m, err := s.Store.GetSealed(ctx, root)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if m.ParentID != "" {
			continue
		}
		rs, err := s.Store.SealedRecipients(ctx, root)
		if err != nil {
			return nil, err
		}
		for _, r := range rs {
			if !hmac.Equal([]byte(mac), []byte(s.threadMAC(root, r.Address))) {
				continue
			}
			a.any = true
			if m.State == "active" && m.WrappedKey != nil && r.State == "active" && a.party[r.Address] == "" {
				a.party[r.Address] = root
			}
		}
	}
	return a, nil
}

// sealedHeader is what sealing keeps of a message's header.
type sealedHeader struct {
	h          mail.Header
	messageID  string
	references string // References then In-Reply-To ids, space-separated
	sentAt     time.Time
}

// readHeader reads the header of a spooled message. received is when the
// gateway took it: the sending time is the Date field when that is
// believable (not after received, allowing for clocks a little fast, and
// not more than 30 days before it), otherwise received.
func readHeader(body io.ReaderAt, size int64, received time.Time) sealedHeader {
	sh := sealedHeader{sentAt: received}
	m, err := mail.ReadMessage(bufio.NewReader(io.NewSectionReader(body, 0, min(size, 1<<20))))
	if err != nil {
		return sh
	}
	sh.h = m.Header
	if ids := msgIDs(m.Header.Get("Message-Id")); len(ids) == 1 {
		sh.messageID = ids[0]
	}
	refs := msgIDs(m.Header.Get("References"))
	for _, id := range msgIDs(m.Header.Get("In-Reply-To")) {
		if !contains(refs, id) {
			refs = append(refs, id)
		}
	}
	sh.references = strings.Join(lastN(refs, 20), " ")
	if t, err := m.Header.Date(); err == nil && !received.IsZero() && !t.After(received.Add(15*time.Minute)) && t.After(received.Add(-30*24*time.Hour)) {
		sh.sentAt = t
	}
	return sh
}

// names returns the display names the header gives addresses in To and Cc.
func (sh sealedHeader) names() map[string]string {
	out := map[string]string{}
	if sh.h == nil {
		return out
	}
	p := &mail.AddressParser{WordDecoder: &wordDecoder}
	for _, k := range []string{"To", "Cc"} {
		list, err := p.ParseList(sh.h.Get(k))
		if err != nil {
			continue
		}
		for _, a := range list {
			if n := strings.TrimSpace(cleanName(a.Name)); n != "" && len(n) <= 100 {
				out[strings.ToLower(a.Address)] = n
			}
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func lastN(list []string, n int) []string {
	if len(list) > n {
		// RFC 5322 §3.6.4: keep the first (the start of the thread) and the
		// most recent.
		return append([]string{list[0]}, list[len(list)-n+1:]...)
	}
	return list
}

// replyThreading returns the In-Reply-To and References of a reply by
// address in root's conversation: it answers the newest message from the
// organisation in the conversation (the sealed message or a staff answer).
func (s *Service) replyThreading(ctx context.Context, root *store.Sealed, address string) (inReplyTo string, refs []string) {
	refs = strings.Fields(root.References)
	last := root.MessageID
	if last != "" {
		refs = append(refs, last)
	}
	thread, _ := s.Store.ThreadOf(ctx, root.ID, address)
	for _, m := range thread {
		if m.MessageID == "" {
			continue
		}
		if !contains(refs, m.MessageID) {
			refs = append(refs, m.MessageID)
		}
		if m.Sender != address {
			last = m.MessageID
		}
	}
	return last, lastN(refs, 20)
}
