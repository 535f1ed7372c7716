// Package portal is the secure portal: where a recipient without keys reads
// a message the policy sealed, after proving they own the address.
//
// Sealing. The queue hands a "portal" recipient's copy to the Service (it
// is a queue.Transport). The message is encrypted under a random 256-bit
// key of its own (AES-256-GCM in 64 KiB chunks, package seal) into a blob
// file; the key is kept only wrapped by a key-encryption key derived from
// the installation key. Destroying the wrapped key (revocation by the
// sender, expiry) destroys the message: the blob is then noise and is
// deleted. Once every recipient is sealed the queue drops its spooled copy.
//
// Notification. Each recipient gets a mail from the organisation's domain
// (DKIM-signed as usual) that says who sent what, carries one link and no
// content, or (portal.link_in_notice = false) only a reference to type in
// at the portal's address. The link holds a token derived from the message
// and the address with a key of the installation: the database keeps only
// its hash, and the token alone opens nothing.
//
// Proving the address. Opening the link changes nothing (mail scanners
// follow links): it shows the sender and a button that mails a one-time
// code to the address. Codes are 8 digits, valid for portal.code_validity,
// compared in constant time, burnt after portal.code_attempts wrong tries;
// each burnt code locks the address for 15 minutes, doubling; at most
// portal.codes_per_hour codes go to one address, and each client address is
// rate-limited too. A right code starts a session (a random cookie,
// HttpOnly, SameSite=Strict, Secure over HTTPS), for portal.session or, if
// asked, portal.remember.
//
// Conversations. A recipient's reply is sealed into the message's thread
// and mailed to the sender as a person's answer whose Message-ID carries a
// thread token; the staff's answer to it, recognised by that token, is
// sealed back into the same conversation (thread.go, reply.go).
//
// Every view, download, reply, code sent, wrong code, lock-out and
// revocation is an audit event.
package portal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/mail"
	"os"
	"strings"
	"sync"
	"time"

	"sealpost/internal/audit"
	"sealpost/internal/blob"
	"sealpost/internal/config"
	"sealpost/internal/fsx"
	"sealpost/internal/queue"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// Submitter queues a message the gateway writes (notification, code, reply).
type Submitter func(ctx context.Context, from string, to []string, subject string, write func(io.Writer) error) error

// Service is the portal.
type Service struct {
	Store *store.Store
	// Recorder appends audit events (kept and retried when the store
	// refuses one); nil: straight to the store.
	Recorder *audit.Recorder
	Dir      string // blobs, when Blobs is nil
	// Blobs keeps the sealed bytes; nil: files under Dir (the layout
	// Dir/ab/abcdef, Dir/ab/abcdef.1 of earlier versions).
	Blobs blob.Store
	// Auth keeps sign-in state (codes, lock-outs, sessions); nil: Store.
	// Shared by every node in cluster mode, so that a sign-in continues
	// on another node and wrong codes count together.
	Auth    store.PortalAuth
	KEK     []byte // wraps message keys
	MACKey  []byte // link tokens, references, codes, sessions
	Config  func() *config.Config
	Log     *slog.Logger
	Submit  Submitter
	Limiter *IPLimiter
	// Passkeys is WebAuthn sign-in; nil when web.public_url's host cannot
	// be a relying party (an IP address).
	Passkeys *Passkeys
	Now      func() time.Time

	locks     sync.Map // msg id → *sync.Mutex: one sealing at a time per message
	blobsOnce sync.Once
	blobs     blob.Store
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}

func (s *Service) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.MACKey)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// token is the link token of (message, address); tokenHash what is stored.
func (s *Service) token(id, address string) string {
	return idEncoding.EncodeToString(s.mac("link", id, address)[:20])
}

func tokenHash(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// reference is what a notification without a link prints: 10 characters
// from an alphabet without look-alikes, shown as XXXXX-XXXXX.
func (s *Service) reference(id, address string) string {
	r := strings.ToUpper(idEncoding.EncodeToString(s.mac("ref", id, address)[:7]))[:10]
	return r[:5] + "-" + r[5:]
}

func (s *Service) wrap(id string, key []byte) ([]byte, error) {
	aead, err := s.kekAEAD()
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	return aead.Seal(nonce, nonce, key, []byte("sealed:"+id)), nil
}

func (s *Service) unwrap(id string, wrapped []byte) ([]byte, error) {
	aead, err := s.kekAEAD()
	if err != nil {
		return nil, err
	}
	if len(wrapped) < aead.NonceSize() {
		return nil, errDestroyed
	}
	return aead.Open(nil, wrapped[:aead.NonceSize()], wrapped[aead.NonceSize():], []byte("sealed:"+id))
}

func (s *Service) kekAEAD() (cipher.AEAD, error) {
	b, err := aes.NewCipher(s.KEK)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(b)
}

var errDestroyed = errors.New("the message's key is destroyed")

func (s *Service) auth() store.PortalAuth {
	if s.Auth != nil {
		return s.Auth
	}
	return s.Store
}

func (s *Service) blobStore() blob.Store {
	s.blobsOnce.Do(func() {
		s.blobs = s.Blobs
		if s.blobs == nil {
			s.blobs = blob.NewFile(fsx.OS{}, s.Dir)
		}
	})
	return s.blobs
}

func blobRef(id string) blob.Ref { return blob.Ref(id[:2] + "/" + id) }

func attachmentRef(id string, index int) blob.Ref {
	return blobRef(id) + blob.Ref("."+itoa(index))
}

func attachmentAAD(id string, index int) []byte { return []byte(id + "/" + itoa(index)) }

// removeBlobs deletes a message's blob and its attachments'. The key is
// destroyed first (DestroySealed), which already makes them unreadable: a
// blob left behind by a failure here is ciphertext nobody can open.
func (s *Service) removeBlobs(id string) {
	ctx := context.Background()
	bs := s.blobStore()
	main := blobRef(id)
	var refs []blob.Ref
	err := bs.List(ctx, string(main), func(i blob.Info) error {
		if i.Ref == main || strings.HasPrefix(string(i.Ref), string(main)+".") {
			refs = append(refs, i.Ref)
		}
		return nil
	})
	for _, ref := range refs {
		if derr := bs.Delete(ctx, ref); derr != nil && err == nil {
			err = derr
		}
	}
	if err != nil && s.Log != nil {
		s.Log.Error("removing a sealed message's blobs failed", "id", id, "err", err)
	}
}

// writeBlob seals r into a new blob at ref.
func (s *Service) writeBlob(ctx context.Context, ref blob.Ref, key, aad []byte, r io.Reader) (int64, error) {
	return writeSealed(ctx, s.blobStore(), ref, key, aad, r)
}

// openAttachment opens the stored, decoded bytes of an attachment.
func (s *Service) openAttachment(m *store.Sealed, index int) (io.ReaderAt, int64, func(), error) {
	return s.openBlob(m, attachmentRef(m.ID, index), attachmentAAD(m.ID, index))
}

// openBlob decrypts a blob of sealed message m, unless its key is gone.
func (s *Service) openBlob(m *store.Sealed, ref blob.Ref, aad []byte) (io.ReaderAt, int64, func(), error) {
	if m.WrappedKey == nil || m.State != "active" {
		return nil, 0, nil, errDestroyed
	}
	key, err := s.unwrap(m.ID, m.WrappedKey)
	if err != nil {
		return nil, 0, nil, err
	}
	defer clear(key)
	f, err := blob.Open(context.Background(), s.blobStore(), ref)
	if err != nil {
		return nil, 0, nil, err
	}
	ra, err := seal.NewReaderAt(f, f.Size(), key, aad)
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	return ra, ra.Size(), func() { ra.Release(); f.Close() }, nil
}

// Deliver seals the message for the portal recipients of d (queue.Transport).
// A recipient whose conversation the message answers (a verified thread
// token bound to them in In-Reply-To/References, see thread.go) finds it
// in that conversation; the others get a sealed message of their own.
func (s *Service) Deliver(ctx context.Context, d *queue.Delivery) queue.Attempt {
	att := queue.Attempt{Relay: "portal", Rcpts: make([]queue.RcptResult, len(d.Rcpts))}
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
		return att
	}
	groups := map[string][]int{} // conversation root, "" for none → indexes of d.Rcpts
	var roots []string
	for i, rc := range d.Rcpts {
		root := answered.Thread(rc)
		if _, ok := groups[root]; !ok {
			roots = append(roots, root)
		}
		groups[root] = append(groups[root], i)
	}
	for _, root := range roots {
		if err := s.deliverTo(ctx, d, sh, root, groups[root], &att, nil); err != nil {
			s.failSealing(d, &att, groups[root], err)
		}
	}
	return att
}

// failSealing marks the recipients at idx (nil: all) for a retry.
func (s *Service) failSealing(d *queue.Delivery, att *queue.Attempt, idx []int, err error) {
	s.Log.Error("sealing for the portal failed; will retry", "msgid", d.Msg.ID, "err", err)
	if idx == nil {
		for i := range att.Rcpts {
			idx = append(idx, i)
		}
	}
	for _, i := range idx {
		att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 sealing failed: " + err.Error()}
	}
}

// deliverTo seals the message for the recipients at idx: into root's
// conversation, or (root "") as a message of its own. With links non-nil
// nobody is notified (the recipient gets the encrypted message with a
// preamble instead) and links[i] is the way to the message for d.Rcpts[i].
func (s *Service) deliverTo(ctx context.Context, d *queue.Delivery, sh sealedHeader, root string, idx []int, att *queue.Attempt, links []string) error {
	var sealed, parent *store.Sealed
	var err error
	if root == "" {
		sealed, err = s.Store.SealedByMsg(ctx, d.Msg.ID)
		if errors.Is(err, store.ErrNotFound) {
			sealed, err = s.seal(ctx, d, sh)
		}
	} else if parent, err = s.Store.GetSealed(ctx, root); err == nil {
		sealed, err = s.Store.SealedInThread(ctx, d.Msg.ID, root)
		if errors.Is(err, store.ErrNotFound) {
			sealed, err = s.sealAnswer(ctx, d, sh, parent)
		}
	}
	if err != nil {
		return err
	}
	have, err := s.Store.SealedRecipients(ctx, sealed.ID)
	if err != nil {
		return err
	}
	known := map[string]*store.SealedRecipient{}
	for _, r := range have {
		known[r.Address] = r
	}
	names := sh.names()
	var add []store.SealedRecipient
	for _, i := range idx {
		a := strings.ToLower(d.Rcpts[i])
		if known[a] == nil {
			add = append(add, store.SealedRecipient{Address: a, TokenHash: tokenHash(s.token(sealed.ID, a)), Reference: s.reference(sealed.ID, a), Name: names[a]})
			known[a] = &add[len(add)-1]
		}
	}
	if len(add) > 0 {
		tx, err := s.Store.DB.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if err := s.Store.AddSealedRecipients(ctx, tx, sealed.ID, add); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		for i := range add {
			known[add[i].Address] = &add[i]
		}
	}
	for _, i := range idx {
		a := strings.ToLower(d.Rcpts[i])
		if links != nil {
			open := sealed
			if parent != nil {
				open = parent // the link of a conversation is its root's
			}
			links[i] = s.wayIn(open.ID, a)
			s.audit(ctx, "gateway", "portal.preamble", sealed.ID, "", "", a)
		} else if known[a].NotifiedAt.IsZero() {
			var err error
			if parent != nil {
				err = s.notifyAnswer(ctx, parent, sealed, a)
			} else {
				err = s.notify(ctx, sealed, a)
			}
			if err != nil {
				att.Rcpts[i] = queue.RcptResult{Text: "451 4.3.0 notification not queued: " + err.Error()}
				continue
			}
			s.Store.MarkNotified(ctx, sealed.ID, a, s.now())
			s.audit(ctx, "gateway", "portal.notified", sealed.ID, "", "", a)
		}
		where := "sealed in the portal as " + sealed.ID
		if parent != nil {
			where = "sealed into the portal conversation " + parent.ID + " as " + sealed.ID
		}
		att.Rcpts[i] = queue.RcptResult{OK: true, Text: "250 " + where}
	}
	return nil
}

// seal encrypts the spooled message into a blob under a new key.
func (s *Service) seal(ctx context.Context, d *queue.Delivery, sh sealedHeader) (*store.Sealed, error) {
	return s.sealFrom(ctx, d.Body, d.Size, sealMeta{msgID: d.Msg.ID, sender: senderOf(d), subject: d.Msg.Subject,
		expires: s.now().Add(s.Config().Portal.Expiry.Duration), messageID: sh.messageID, references: sh.references, sentAt: sh.sentAt})
}

// sealAnswer seals a staff answer into root's conversation: it lives and
// dies with root.
func (s *Service) sealAnswer(ctx context.Context, d *queue.Delivery, sh sealedHeader, root *store.Sealed) (*store.Sealed, error) {
	m, err := s.sealFrom(ctx, d.Body, d.Size, sealMeta{msgID: d.Msg.ID, parentID: root.ID, sender: senderOf(d), subject: d.Msg.Subject,
		expires: root.ExpiresAt, messageID: sh.messageID, references: sh.references, sentAt: sh.sentAt})
	if err == nil {
		s.audit(ctx, "gateway", "portal.answer", root.ID, "", "", "staff answer "+m.ID+" sealed into the conversation")
	}
	return m, err
}

func senderOf(d *queue.Delivery) string {
	if d.Msg.HeaderFrom != "" {
		return strings.ToLower(d.Msg.HeaderFrom)
	}
	return strings.ToLower(d.Msg.MailFrom)
}

type sealMeta struct {
	msgID, parentID, sender, subject string
	expires                          time.Time
	messageID, references            string
	sentAt                           time.Time
	reply                            bool // a recipient's reply: the sender's name is not the message's
}

func (s *Service) sealFrom(ctx context.Context, body io.ReaderAt, size int64, meta sealMeta) (*store.Sealed, error) {
	cfg := s.Config()
	id := randomID()
	key := make([]byte, seal.KeyLen)
	rand.Read(key)
	defer clear(key)
	// One pass seals; a second (over the spool, not the blob) describes.
	if _, err := s.writeBlob(ctx, blobRef(id), key, []byte(id), io.NewSectionReader(body, 0, size)); err != nil {
		s.removeBlobs(id)
		return nil, err
	}
	parts, h, err := describe(io.NewSectionReader(body, 0, size), func(index int, r io.Reader) (int64, error) {
		return s.writeBlob(ctx, attachmentRef(id, index), key, attachmentAAD(id, index), r)
	})
	var pe *os.PathError
	switch {
	case errors.As(err, &pe):
		s.removeBlobs(id) // the disk failed: the queue retries the sealing
		return nil, err
	case err != nil:
		// Not a message we can take apart: it is kept whole and shown as
		// having no readable parts.
		parts = &Parts{Text: -1, HTML: -1, Attachments: []Attachment{}}
	}
	pj, _ := json.Marshal(parts)
	wrapped, err := s.wrap(id, key)
	if err != nil {
		return nil, err
	}
	subject, senderName := meta.subject, ""
	if h != nil {
		if v, err := wordDecoder.DecodeHeader(h.Get("Subject")); err == nil {
			subject = v
		}
		if a, err := (&mail.AddressParser{WordDecoder: &wordDecoder}).Parse(h.Get("From")); err == nil {
			senderName = a.Name
		}
	}
	if meta.reply {
		senderName = ""
	}
	if meta.sentAt.IsZero() {
		meta.sentAt = s.now()
	}
	now := s.now()
	m := &store.Sealed{ID: id, MsgID: meta.msgID, ParentID: meta.parentID, CreatedAt: now, ExpiresAt: meta.expires,
		Sender: meta.sender, SenderName: senderName, Subject: subject, HideSubject: cfg.Portal.HideSubject,
		Size: size, WrappedKey: wrapped, Parts: string(pj), MessageID: meta.messageID, References: meta.references, SentAt: meta.sentAt}
	tx, err := s.Store.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	if err := s.Store.InsertSealed(ctx, tx, m, nil); err != nil {
		s.removeBlobs(id)
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		s.removeBlobs(id)
		return nil, err
	}
	s.audit(ctx, "gateway", "portal.sealed", id, "", "", "message "+meta.msgID)
	return m, nil
}

// open returns the decrypted message of a sealed record.
func (s *Service) open(m *store.Sealed) (io.ReaderAt, int64, func(), error) {
	return s.openBlob(m, blobRef(m.ID), []byte(m.ID))
}

// Destroy destroys a sealed message: its key and its blob (and its replies').
func (s *Service) Destroy(ctx context.Context, id, state, actor string) error {
	thread, _ := s.Store.Thread(ctx, id)
	if err := s.Store.DestroySealed(ctx, id, state, s.now()); err != nil {
		return err
	}
	s.removeBlobs(id)
	for _, r := range thread {
		s.removeBlobs(r.ID)
	}
	s.audit(ctx, actor, "portal."+state, id, "", "", "key destroyed")
	return nil
}

// Sweep destroys the messages whose time is up.
func (s *Service) Sweep(ctx context.Context) {
	// Reply forms that old are refused anyway: their use need not be kept.
	if err := s.Store.PrunePortalForms(ctx, s.now().Add(-s.formMaxAge())); err != nil && ctx.Err() == nil {
		s.Log.Error("pruning old reply forms failed", "err", err)
	}
	ids, err := s.Store.ExpiredSealed(ctx, s.now(), 200)
	if err != nil {
		if ctx.Err() == nil {
			s.Log.Error("looking for expired sealed messages failed", "err", err)
		}
		return
	}
	for _, id := range ids {
		if err := s.Destroy(ctx, id, "expired", "gateway"); err != nil {
			s.Log.Error("destroying an expired sealed message failed", "id", id, "err", err)
		}
	}
}

// audit records what happened in the portal. An event the store refuses
// is kept by the recorder and appended later; the error means it is lost,
// and the caller must fail what it records (a view, a download).
func (s *Service) audit(ctx context.Context, actor, action, object, ip, ua, detail string) error {
	e := &store.AuditEvent{At: s.now(), Actor: actor, Action: action, Object: object, IP: ip, UA: truncate(ua, 200), Detail: detail}
	var err error
	if s.Recorder != nil {
		err = s.Recorder.Record(ctx, e)
	} else {
		err = s.Store.AppendAudit(ctx, e)
	}
	if err != nil {
		s.Log.Error("audit event not recorded", "action", action, "err", err)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// Brand returns the configured header colour and logo (nil if none).
func (s *Service) Brand() (string, []byte) {
	cfg := s.Config()
	var logo []byte
	if cfg.Portal.LogoFile != "" {
		logo, _ = os.ReadFile(cfg.Portal.LogoFile)
	}
	return cfg.Portal.BrandColour, logo
}

func (s *Service) noticeFrom(cfg *config.Config) string {
	if cfg.Portal.NoticeFrom != "" {
		return cfg.Portal.NoticeFrom
	}
	return "noreply@" + cfg.Org.Domains[0]
}

func fmtTime(t time.Time) string { return t.UTC().Format("2 January 2006, 15:04 UTC") }

// errorf is an error for the log with the public text kept apart.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
