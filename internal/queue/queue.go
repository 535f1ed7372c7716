// Package queue makes accepted messages durable and delivers them.
//
// Acceptance (RFC 5321 §6.1: once a server has answered 250 to the end of
// DATA it is responsible for the message) follows one order, so that a crash
// at any point loses no acknowledged message and leaves nothing half-written
// to deliver:
//
//  1. the message is sealed as it streams in: in memory and then appended
//     to the active spool segment, or, if large, into a file of its own
//     that is fsynced and linked into place (see Spool);
//  2. the segment (or the directory) is fsynced and the message's rows are
//     committed, both once per batch of concurrent sessions (group commit,
//     see store.Committer);
//  3. only then does the SMTP session answer 250.
//
// Spooled bytes that no committed row points to are removed at start
// (Spool.Recover).
//
// Disk: whatever finishes a message (delivery, bounce, expiry, DeleteQueued,
// Resolve of a hold or quarantine) frees its spool space at once through
// Spool.Release: its record is erased, a segment with nothing live left is
// unlinked, a file of its own removed; and its row loses the message's key,
// so bytes left anywhere on the disk are unreadable. Mostly dead segments
// are compacted (see compact.go): the spool's files stay within live bytes
// + 3 × SegmentMax.
//
// Durability is tested against power loss, not only against a killed
// process: the spool writes through internal/fsx, whose Fault file system
// forgets every write not fsynced at a simulated power cut
// (TestPowerCut*); the store relies on SQLite in WAL mode with
// synchronous=FULL, under which a committed transaction survives a power
// cut (with NORMAL it would survive a crash of the process only).
//
// Delivery is at least once: a crash after the next hop
// accepted a message and before its result is committed delivers it again.
//
// Delivery: fresh messages are handed to the workers in memory; recipients
// that must wait (temporary failures, retries) are found by a poller, which
// leases due rows so that several workers or nodes never deliver the same
// recipient at once. Temporary failures back off exponentially with jitter
// up to a maximum age; permanent failures and expiry send the sender a DSN
// (RFC 3464), committed in the same transaction as the failure.
package queue

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sealpost/internal/dsn"
	"sealpost/internal/metrics"
	"sealpost/internal/store"
)

// Routes: where a recipient's mail goes.
const (
	RouteMailHost = "mailhost" // the organisation's own mail host
	RouteOutbound = "outbound" // the internet (MX) or the smarthost
	RoutePortal   = "portal"   // sealed into the secure portal
	RouteSMIME    = "smime"    // encrypted to S/MIME certificates, then outbound
)

// Delivery is one attempt to hand a message to one next hop for some of its
// recipients.
type Delivery struct {
	Msg    *store.Message
	Route  string
	Domain string // recipient domain (outbound route)
	Rcpts  []string
	Body   io.ReaderAt
	Size   int64
	// RequireTLS: deliver only over TLS with a certificate that verifies
	// for the host (policy action require-tls); never in clear.
	RequireTLS bool
	// SMTPRequireTLS: the sender asked for REQUIRETLS (RFC 8689 §4.2.1):
	// verified TLS, a next hop that offers REQUIRETLS after STARTTLS, and
	// the MAIL parameter passed on.
	SMTPRequireTLS bool
	// TLSRequiredNo: the message carries "TLS-Required: No" (RFC 8689 §5)
	// and no REQUIRETLS. Whether it lowers anything is the transport's
	// choice (outbound.tls_required_no), and never below RequireTLS.
	TLSRequiredNo bool
}

// RcptResult is the next hop's answer for one recipient.
type RcptResult struct {
	OK        bool
	Permanent bool
	Text      string // e.g. "550 5.1.1 no such user", or a connection error
}

// Attempt is the outcome of one Delivery.
type Attempt struct {
	Rcpts []RcptResult // in the order of Delivery.Rcpts
	TLS   string       // TLS used, e.g. "TLSv1.3 TLS_AES_128_GCM_SHA256", "" for none
	Relay string       // host:port that answered
	// TLSInfo is the evidence of the TLS used, for the audit log (nil:
	// none, or a transport that is not SMTP).
	TLSInfo *TLSInfo
	// Sessions has the policy evidence of every MX host tried or skipped
	// in this attempt, in order (the last is TLSInfo): TLS-RPT (RFC 8460)
	// counts successes and failures per host. Nil without a TLS policy.
	Sessions []*TLSInfo
}

// TLSInfo is what the audit log keeps of a TLS session with the next hop.
type TLSInfo struct {
	Version, Cipher string
	// Verified: the certificate chains to a trusted root and names the
	// host (checked even when the delivery did not require it).
	Verified       bool
	PeerCertSHA256 string // hex, of the leaf certificate

	// The outbound TLS policy behind the attempt (internal/tlspolicy), ""
	// for a fixed next hop (mail host, smarthost) where none is evaluated.
	Mode         string // dane | mta-sts | required | opportunistic
	Why          string // why that mode: DANE records, MTA-STS id, list entry
	Host         string // the MX host name the policy was checked against
	PolicyDomain string // RFC 8460 §4.4 policy-domain
	PolicyID     string // MTA-STS policy id, "" when none
	PolicyMode   string // MTA-STS enforce | testing
	Chain        string // dane-ee | dane-ta | webpki | unverified
	TLSA         string // the DANE record that matched, "3 1 1"
	// Failure is the RFC 8460 §4.3 result type of what went wrong
	// (starttls-not-supported, tlsa-invalid, certificate-host-mismatch, ...),
	// "" when nothing did; TLS-RPT counts attempts by it.
	Failure string
	// PolicyStrings is RFC 8460 §4.4's policy-string: the MTA-STS policy's
	// lines or the TLSA records in presentation form. Not audited.
	PolicyStrings []string
}

// Transport delivers messages on one route.
type Transport interface {
	Deliver(ctx context.Context, d *Delivery) Attempt
}

// Options are the queue's settings.
type Options struct {
	Hostname      string // for DSNs
	Workers       int
	RetryInitial  time.Duration
	RetryMax      time.Duration
	MaxAge        time.Duration
	PollInterval  time.Duration
	KeepDelivered time.Duration
	MaxInMemory   int // fresh messages dispatched without a database poll
	// SpoolCheck is how often the spool's index is compared with the
	// store, to free the space of messages finished by another process
	// (default a minute).
	SpoolCheck time.Duration
}

// Queue is the durable queue and its delivery workers.
type Queue struct {
	opt        Options
	known      sync.Map // external domains delivered to (first-contact checks)
	store      *store.Store
	committer  *store.Committer
	spool      *Spool
	route      func(rcpt string) string
	transports map[string]Transport
	log        *slog.Logger
	metrics    *metrics.Metrics
	now        func() time.Time

	fresh    chan job
	retry    chan job
	inflight atomic.Int64
	wake     chan struct{}
	wg       sync.WaitGroup

	compactMu sync.Mutex
	noCompact bool // tests: keep dead segments to compact later
}

type job struct {
	msg    *store.Message
	route  string
	domain string
	action string // "" or "require-tls"
	rcpts  []string
	tries  map[string]int
}

// New returns a queue. route maps a recipient to RouteMailHost or
// RouteOutbound; transports holds one Transport per route.
func New(opt Options, st *store.Store, c *store.Committer, sp *Spool, route func(string) string, transports map[string]Transport, log *slog.Logger, m *metrics.Metrics) *Queue {
	if opt.MaxInMemory <= 0 {
		opt.MaxInMemory = 20000
	}
	if m != nil && m.Registry != nil {
		m.Registry.MustRegister(sp.gauges()...)
	}
	return &Queue{
		opt: opt, store: st, committer: c, spool: sp, route: route, transports: transports,
		log: log, metrics: m, now: time.Now,
		fresh: make(chan job, opt.MaxInMemory), retry: make(chan job), wake: make(chan struct{}, 1),
	}
}

// Spool returns the queue's spool.
func (q *Queue) Spool() *Spool { return q.spool }

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// NewID returns a new message id: 48 bits of milliseconds and 80 random
// bits, 26 characters of Crockford-style base32. Ids sort by time and cannot
// be guessed.
func NewID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])
	return idEncoding.EncodeToString(b[:])
}

// Envelope describes a message being accepted.
type Envelope struct {
	ID         string
	Direction  string // "in", "out", "dsn"
	MailFrom   string
	Rcpts      []string
	RemoteIP   string
	Helo       string
	AuthUser   string
	HeaderFrom string
	Subject    string
	MessageID  string
	// TLSRequest is the sender's TLS request, store.TLSRequestRequire or
	// store.TLSRequestOptional, "" for none.
	TLSRequest string
	// DataHeaders are header fields (CRLF-terminated) the data checks
	// added after the spool had the header section; stored in the
	// message's row and written above the spooled bytes by every reader
	// (OpenDelivered).
	DataHeaders string

	// Plan is the policy's plan per recipient; recipients not in it are
	// delivered as usual.
	Plan map[string]RcptPlan
	// Decision, when set, is recorded with the message.
	Decision *store.Decision
	// Notices are generated messages (to the sender) made durable together
	// with this one.
	Notices []*Pending

	// SHA256 is the hex SHA-256 of the bytes accepted (as spooled), for
	// the audit log.
	SHA256 string
	// PolicyDetail is, per recipient, the policy's decision for the audit
	// log ("action=portal rules=a,b"); recipients not in it were not
	// inspected.
	PolicyDetail map[string]string
	// Audit are further events committed with the message (a policy
	// outcome).
	Audit []*store.AuditEvent
}

// Recipient actions (store.Recipient.Action): flags, concatenated.
const (
	ActionRequireTLS = "require-tls" // only over verified TLS
	ActionSplit      = ",split"      // a copy of its own, To: only this recipient
	ActionPortal     = "portal"      // sealed into the portal (route portal)
)

// ActionSMIME: encrypted to the recipient's S/MIME certificate (route smime).
const ActionSMIME = "encrypt-smime"

// ActionEncrypt and ActionPGP: encrypted to the recipient's key (OpenPGP
// or, for ActionEncrypt, S/MIME by preference); their routes are their
// names, whose transports (internal/encrypt) encrypt and hand over to the
// outbound one.
const (
	ActionEncrypt = "encrypt"
	ActionPGP     = "encrypt-pgp"
)

// RcptPlan is how one recipient's copy is handled.
type RcptPlan struct {
	Status string // "queued", "held" or "quarantined"
	Action string // for queued: "" or "require-tls"
	Then   string // for held and quarantined: the action a release gives
}

// ErrTemporary marks failures of the database or the queue (not of the
// message): the SMTP layer answers them with 451 4.3.0.
var ErrTemporary = errors.New("queue temporarily unavailable")

// Accept makes the message in w durable and queues it for delivery. It
// returns nil only once the message is on disk and committed; on error the
// spool file is gone and the client must be told to try again.
func (q *Queue) Accept(ctx context.Context, env *Envelope, w *SpoolWriter) error {
	loc, durable, err := w.Commit()
	if err != nil {
		return err
	}
	now := q.now()
	msg := &store.Message{
		ID: env.ID, Direction: env.Direction, MailFrom: env.MailFrom, ReceivedAt: now, Size: w.Size(),
		RemoteIP: env.RemoteIP, Helo: env.Helo, AuthUser: env.AuthUser, HeaderFrom: env.HeaderFrom,
		Subject: env.Subject, MessageID: env.MessageID, State: "queued", Spool: loc, TLSRequest: env.TLSRequest,
		DataHeaders: env.DataHeaders,
	}
	rcpts := make([]store.Recipient, 0, len(env.Rcpts))
	var waiting []store.Recipient
	for _, r := range env.Rcpts {
		sr := store.Recipient{Rcpt: r, Route: q.route(r), NextAttempt: now, Status: "queued"}
		if p, ok := env.Plan[r]; ok {
			sr.Action, sr.Then = p.Action, p.Then
			if p.Action == ActionPortal {
				sr.Route = RoutePortal
			}
			if p.Action == ActionSMIME && sr.Route == RouteOutbound {
				sr.Route = RouteSMIME
			}
			if (p.Action == ActionEncrypt || p.Action == ActionPGP) && sr.Route == RouteOutbound {
				sr.Route = p.Action
			}
			if p.Status == "held" || p.Status == "quarantined" {
				sr.Status, sr.NextAttempt = p.Status, time.Time{}
				waiting = append(waiting, sr)
				continue
			}
		}
		rcpts = append(rcpts, sr)
	}
	jobs := groupJobs(msg, rcpts, nil)
	// Reserve room for in-memory dispatch; without it the poller finds the
	// message (lease 0, due now).
	inMemory := q.inflight.Add(int64(len(jobs))) <= int64(q.opt.MaxInMemory)
	if !inMemory {
		q.inflight.Add(-int64(len(jobs)))
	} else {
		for i := range rcpts {
			rcpts[i].LeaseUntil = now.Add(time.Hour)
		}
	}
	var syncs []Durable
	for _, n := range env.Notices {
		syncs = append(syncs, n.durable)
	}
	syncKey, syncFn := durable.Key, durable.Sync
	if len(syncs) > 0 {
		// The notices sit in the same segment or in files of their own:
		// sync them all before the commit.
		first := durable
		syncKey = "with-notices:" + env.ID
		syncFn = func() error {
			for _, d := range append([]Durable{first}, syncs...) {
				if d.Sync != nil {
					if err := d.Sync(); err != nil {
						return err
					}
				}
			}
			return nil
		}
	}
	events := acceptEvents(env, msg, append(rcpts, waiting...))
	err = q.committer.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := q.store.InsertMessage(ctx, tx, msg, append(rcpts, waiting...)); err != nil {
			return err
		}
		// The message's life in the audit log starts in the commit that
		// makes it durable: no 250 without its record.
		if err := q.store.AppendAuditTx(ctx, tx, events...); err != nil {
			return err
		}
		if env.Decision != nil {
			if err := q.store.InsertDecision(ctx, tx, env.Decision); err != nil {
				return err
			}
		}
		for _, n := range env.Notices {
			if err := q.store.InsertMessage(ctx, tx, n.msg, n.rcpts); err != nil {
				return err
			}
		}
		return nil
	}, syncKey, syncFn)
	if err != nil {
		if inMemory {
			q.inflight.Add(-int64(len(jobs)))
		}
		q.spool.Remove(env.ID, loc)
		for _, n := range env.Notices {
			q.spool.Remove(n.msg.ID, n.msg.Spool)
		}
		if errors.Is(err, ErrStorage) {
			return err
		}
		return fmt.Errorf("%w: %v", ErrTemporary, err)
	}
	q.spool.Settle(env.ID)
	for _, n := range env.Notices {
		q.spool.Settle(n.msg.ID)
	}
	if inMemory {
		for _, j := range jobs {
			q.fresh <- j // cannot block: capacity is MaxInMemory and inflight counts what is in it
		}
	} else {
		q.kick()
	}
	if len(env.Notices) > 0 {
		q.kick() // notices are found by the poller (lease 0, due now)
	}
	return nil
}

// groupJobs splits a message's recipients into deliveries: one for the mail
// host, one per recipient domain for the outbound route.
func groupJobs(msg *store.Message, rcpts []store.Recipient, tries map[string]int) []job {
	var jobs []job
	idx := map[string]int{}
	for _, r := range rcpts {
		domain := ""
		if r.Route == RouteOutbound || r.Route == RouteSMIME {
			domain = strings.ToLower(domainOf(r.Rcpt))
		}
		key := r.Route + "\x00" + domain + "\x00" + r.Action
		if strings.Contains(r.Action, ActionSplit) {
			key += "\x00" + r.Rcpt
		}
		i, ok := idx[key]
		if !ok {
			i = len(jobs)
			idx[key] = i
			jobs = append(jobs, job{msg: msg, route: r.Route, domain: domain, action: r.Action, tries: map[string]int{}})
		}
		jobs[i].rcpts = append(jobs[i].rcpts, r.Rcpt)
		jobs[i].tries[r.Rcpt] = tries[r.Rcpt]
	}
	return jobs
}

func domainOf(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[i+1:]
	}
	return ""
}

// Start recovers from the previous run (releases leases, sweeps orphan spool
// files) and starts the poller and workers. They stop when ctx ends; Wait
// waits for them.
func (q *Queue) Start(ctx context.Context) error {
	if err := q.store.ReleaseLeases(ctx); err != nil {
		return fmt.Errorf("queue: releasing leases: %w", err)
	}
	keep, err := q.store.QueuedSpool(ctx)
	if err != nil {
		return fmt.Errorf("queue: listing queued messages: %w", err)
	}
	n, err := q.spool.Recover(keep)
	if err != nil {
		return fmt.Errorf("queue: sweeping spool: %w", err)
	}
	if n > 0 {
		q.log.Info("removed spool files no queued message needs", "files", n)
	}
	known, err := q.store.KnownDomains(ctx)
	if err != nil {
		return fmt.Errorf("queue: loading known domains: %w", err)
	}
	for d := range known {
		q.known.Store(d, true)
	}
	for i := 0; i < q.opt.Workers; i++ {
		q.wg.Add(1)
		go q.worker(ctx)
	}
	q.wg.Add(1)
	go q.compactor(ctx) // Recover asked it to look at every segment
	q.wg.Add(1)
	go q.poller(ctx)
	return nil
}

// Wait waits for the workers and poller to stop.
func (q *Queue) Wait() { q.wg.Wait() }

func (q *Queue) kick() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Kick makes the poller look for due recipients now.
func (q *Queue) Kick() { q.kick() }

func (q *Queue) poller(ctx context.Context) {
	defer q.wg.Done()
	t := time.NewTicker(q.opt.PollInterval)
	defer t.Stop()
	lastPrune := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-q.wake:
		}
		for ctx.Err() == nil {
			n, err := q.pollOnce(ctx)
			if err != nil {
				if ctx.Err() == nil {
					q.log.Error("queue poll failed", "err", err)
				}
				break
			}
			if n == 0 {
				break
			}
		}
		if now := q.now(); now.Sub(lastPrune) > time.Hour {
			lastPrune = now
			if n, err := q.store.PruneDone(ctx, now.Add(-q.opt.KeepDelivered)); err != nil {
				q.log.Error("pruning finished messages failed", "err", err)
			} else if n > 0 {
				q.log.Info("pruned finished messages", "count", n)
			}
		}
	}
}

func (q *Queue) pollOnce(ctx context.Context) (int, error) {
	due, err := q.store.LeaseDue(ctx, q.now(), time.Hour, 500)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	byMsg := map[string][]store.Recipient{}
	var order []string
	for _, r := range due {
		if _, ok := byMsg[r.MsgID]; !ok {
			order = append(order, r.MsgID)
		}
		byMsg[r.MsgID] = append(byMsg[r.MsgID], r)
	}
	for _, id := range order {
		msg, err := q.store.Message(ctx, id)
		if err != nil {
			return 0, err
		}
		tries := map[string]int{}
		for _, r := range byMsg[id] {
			tries[r.Rcpt] = r.Attempts
		}
		for _, j := range groupJobs(msg, byMsg[id], tries) {
			select {
			case q.retry <- j:
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
	}
	return len(due), nil
}

func (q *Queue) worker(ctx context.Context) {
	defer q.wg.Done()
	for {
		var j job
		select {
		case <-ctx.Done():
			return
		case j = <-q.fresh:
			q.inflight.Add(-1)
		case j = <-q.retry:
		}
		q.deliver(ctx, j)
	}
}

// backoff is the wait before attempt number tries+1: RetryInitial doubling
// per attempt up to RetryMax, with ±20% jitter so that retries of a burst
// spread out.
func (q *Queue) backoff(tries int) time.Duration {
	d := float64(q.opt.RetryInitial) * math.Pow(2, float64(min(tries, 30)))
	d = math.Min(d, float64(q.opt.RetryMax))
	d *= 0.8 + 0.4*mrand.Float64()
	return time.Duration(d)
}

func (q *Queue) deliver(ctx context.Context, j job) {
	log := q.log.With("msgid", j.msg.ID, "route", j.route)
	start := q.now()
	var att Attempt
	body, err := q.OpenDelivered(j.msg)
	if err != nil {
		// A queued message without a readable spool file: nothing can deliver
		// it. Fail it loudly (DSN) instead of retrying for days.
		log.Error("spool file unreadable", "err", err)
		att.Rcpts = make([]RcptResult, len(j.rcpts))
		for i := range att.Rcpts {
			att.Rcpts[i] = RcptResult{Permanent: true, Text: "554 5.3.0 message lost in the gateway's spool; please send it again"}
		}
	} else {
		t := q.transports[j.route]
		if t == nil {
			att.Rcpts = make([]RcptResult, len(j.rcpts))
			for i := range att.Rcpts {
				att.Rcpts[i] = RcptResult{Text: "no transport for route " + j.route}
			}
		} else {
			d := &Delivery{Msg: j.msg, Route: j.route, Domain: j.domain, Rcpts: j.rcpts, Body: body, Size: body.Size(),
				RequireTLS:     strings.HasPrefix(j.action, ActionRequireTLS),
				SMTPRequireTLS: j.msg.TLSRequest == store.TLSRequestRequire,
				TLSRequiredNo:  j.msg.TLSRequest == store.TLSRequestOptional}
			if strings.Contains(j.action, ActionSplit) && len(j.rcpts) == 1 {
				d.Body, d.Size = addressedTo(body, body.Size(), j.rcpts[0])
			}
			att = t.Deliver(ctx, d)
		}
		body.Close()
	}
	if ctx.Err() != nil {
		return // shutting down: the leases are released at the next start
	}
	now := q.now()
	q.metrics.DeliveryDuration.WithLabelValues(j.route).Observe(now.Sub(start).Seconds())

	results := make([]store.Result, len(j.rcpts))
	events := make([]*store.AuditEvent, 0, len(j.rcpts)+1)
	var failed []dsn.Recipient
	for i, rcpt := range j.rcpts {
		r := att.Rcpts[i]
		res := store.Result{MsgID: j.msg.ID, Rcpt: rcpt, TLS: att.TLS, Relay: att.Relay, Error: r.Text}
		switch {
		case r.OK:
			res.Status = "delivered"
			q.metrics.DeliveryAttempts.WithLabelValues(j.route, "delivered").Inc()
		case r.Permanent:
			res.Status = "failed"
			q.metrics.DeliveryAttempts.WithLabelValues(j.route, "failed").Inc()
			failed = append(failed, dsn.Recipient{Addr: rcpt, Diagnostic: r.Text, Action: "failed", RemoteMTA: att.Relay, TLS: tlsSummary(att.TLSInfo)})
		case now.Sub(j.msg.ReceivedAt) >= q.opt.MaxAge:
			res.Status = "failed"
			res.Error = "expired after " + q.opt.MaxAge.String() + ": " + r.Text
			q.metrics.DeliveryAttempts.WithLabelValues(j.route, "expired").Inc()
			failed = append(failed, dsn.Recipient{Addr: rcpt, Diagnostic: r.Text, Action: "failed", RemoteMTA: att.Relay, Expired: true, TLS: tlsSummary(att.TLSInfo)})
		default:
			res.Status = "queued"
			res.NextAttempt = now.Add(q.backoff(j.tries[rcpt]))
			q.metrics.DeliveryAttempts.WithLabelValues(j.route, "deferred").Inc()
		}
		results[i] = res
		events = append(events, attemptEvent(j, att, res, r, j.tries[rcpt]+1, now))
		log.Info("delivery", "rcpt_domain", domainOf(rcpt), "status", res.Status, "relay", att.Relay, "tls", att.TLS, "detail", r.Text, "attempt", j.tries[rcpt]+1)
	}

	// A DSN to a sender who is not the null path (RFC 5321 §4.5.5: never
	// answer a bounce with a bounce), durable with the failure itself.
	var bounce *pendingDSN
	if len(failed) > 0 && j.msg.MailFrom != "" && j.msg.Direction != "dsn" {
		bounce, err = q.spoolDSN(j.msg, failed, now)
		if err != nil {
			log.Error("cannot write DSN; the failure is retried", "err", err)
			return // leases expire; the recipient is tried again later
		}
		events = append(events, &store.AuditEvent{At: now, Actor: "gateway", Action: "dsn.queued", Object: j.msg.ID,
			Addrs: []string{j.msg.MailFrom}, Detail: fmt.Sprintf("dsn=%s failed=%d", bounce.msg.ID, len(failed))})
	}
	var done []string
	var durable Durable
	if bounce != nil {
		durable = bounce.durable
	}
	// The first delivery to an external domain makes it known (policy:
	// first-contact checks); so does the first message sealed into the
	// portal for it, or a partner who only ever gets portal mail would be a
	// first contact for ever.
	var newContacts []string
	delivered := 0
	if (j.route == RouteOutbound || j.route == RoutePortal) && j.msg.Direction == "out" {
		for _, r := range results {
			if r.Status == "delivered" {
				delivered++
				if j.route == RoutePortal && q.route(r.Rcpt) == RouteOutbound {
					newContacts = q.unknown(newContacts, strings.ToLower(domainOf(r.Rcpt)))
				}
			}
		}
	}
	if j.route == RouteOutbound && delivered > 0 && j.domain != "" {
		newContacts = q.unknown(newContacts, j.domain)
	}
	err = q.committer.Do(context.Background(), func(ctx context.Context, tx *sql.Tx) error {
		var err error
		done, err = q.store.ApplyResults(ctx, tx, now, results)
		if err != nil {
			return err
		}
		if err := q.store.AppendAuditTx(ctx, tx, events...); err != nil {
			return err
		}
		if len(newContacts) > 0 {
			if err := q.store.AddContacts(ctx, tx, newContacts, now); err != nil {
				return err
			}
		}
		if delivered > 0 {
			// Usage reports: outside recipients per domain and month.
			var doms []string
			for _, r := range results {
				if r.Status == "delivered" {
					doms = append(doms, strings.ToLower(domainOf(r.Rcpt)))
				}
			}
			if err := q.store.CountDomains(ctx, tx, now, doms); err != nil {
				return err
			}
		}
		if bounce == nil {
			return nil
		}
		return q.store.InsertMessage(ctx, tx, bounce.msg, bounce.rcpts)
	}, durable.Key, durable.Sync)
	if err != nil {
		log.Error("recording delivery results failed; they will be retried", "err", err)
		if bounce != nil {
			q.spool.Remove(bounce.msg.ID, bounce.msg.Spool)
		}
		return
	}
	if bounce != nil {
		q.spool.Settle(bounce.msg.ID)
	}
	for _, d := range newContacts {
		q.known.Store(d, true)
	}
	for _, id := range done {
		// A job carries one message: what is done is that message.
		if err := q.spool.Remove(id, j.msg.Spool); err != nil {
			log.Warn("removing delivered spool file failed (removed at next start)", "err", err)
		}
	}
	if bounce != nil {
		log.Info("DSN queued", "dsn_msgid", bounce.msg.ID)
		for _, nj := range groupJobs(bounce.msg, bounce.rcpts, nil) {
			nj := nj
			go func() {
				select {
				case q.retry <- nj:
				case <-ctx.Done():
				}
			}()
		}
	}
}

// Pending is a message the gateway wrote itself (a DSN, a notice to a
// sender), spooled but not yet committed.
type Pending struct {
	msg     *store.Message
	rcpts   []store.Recipient
	durable Durable
}

// ID is the pending message's id.
func (p *Pending) ID() string { return p.msg.ID }

type pendingDSN = Pending

// Compose spools a message the gateway writes: write gets the whole message
// (header and body, CRLF line endings). from is the envelope sender ("" for
// the null sender, which nobody answers with a bounce). Commit it with
// Submit, or with an Envelope's Notices.
func (q *Queue) Compose(direction, from string, to []string, subject string, write func(io.Writer) error) (*Pending, error) {
	id := NewID()
	w, err := q.spool.Create(id)
	if err != nil {
		return nil, err
	}
	if err := write(w); err != nil {
		w.Abort()
		return nil, err
	}
	loc, durable, err := w.Commit()
	if err != nil {
		return nil, err
	}
	now := q.now()
	msg := &store.Message{ID: id, Direction: direction, MailFrom: from, HeaderFrom: from, ReceivedAt: now, Size: w.Size(), Subject: subject, State: "queued", Spool: loc}
	var rcpts []store.Recipient
	for _, r := range to {
		rcpts = append(rcpts, store.Recipient{Rcpt: r, Route: q.route(r), NextAttempt: now})
	}
	return &Pending{msg: msg, rcpts: rcpts, durable: durable}, nil
}

// DirectionTLSReport is the direction of our TLS-RPT report messages.
const DirectionTLSReport = store.DirectionTLSReport

// AsReport makes a composed message a machine report (TLS-RPT): sent
// from the null path, so that a failure makes no DSN (RFC 5321 §4.5.5),
// and with the sender's TLS request (store.TLSRequestOptional for a report
// that carries "TLS-Required: No").
func (p *Pending) AsReport(tlsRequest string) {
	p.msg.MailFrom, p.msg.TLSRequest = "", tlsRequest
}

// Submit commits a composed message and queues it.
func (q *Queue) Submit(ctx context.Context, p *Pending) error {
	ev := generatedEvent(p, "")
	err := q.committer.Do(ctx, func(ctx context.Context, tx *sql.Tx) error {
		if err := q.store.InsertMessage(ctx, tx, p.msg, p.rcpts); err != nil {
			return err
		}
		return q.store.AppendAuditTx(ctx, tx, ev)
	}, p.durable.Key, p.durable.Sync)
	if err != nil {
		q.spool.Remove(p.msg.ID, p.msg.Spool)
		return err
	}
	q.spool.Settle(p.msg.ID)
	q.kick()
	return nil
}

// Discard removes a composed message that will not be submitted.
func (q *Queue) Discard(p *Pending) { q.spool.Remove(p.msg.ID, p.msg.Spool) }

// Resolve ends the wait of a held or quarantined message (see
// store.Resolve): released recipients are queued at once; a message with
// nothing left to deliver loses its spooled bytes.
func (q *Queue) Resolve(ctx context.Context, id string, release bool, state, by, reason string) ([]string, error) {
	rcpts, done, err := q.store.Resolve(ctx, id, release, state, by, reason, q.now())
	if err != nil {
		return nil, err
	}
	if done {
		q.releaseIfDone(ctx, id)
	}
	if release {
		q.kick()
	}
	return rcpts, nil
}

// RetryNow makes every waiting recipient of message id due now and wakes
// the workers. It reports whether anything was waiting.
func (q *Queue) RetryNow(ctx context.Context, id string) (bool, error) {
	ok, err := q.store.RetryNow(ctx, id, q.now())
	if err != nil || !ok {
		return ok, err
	}
	q.kick()
	return true, nil
}

// DeleteQueued stops delivering message id (its waiting recipients become
// "deleted", no bounce is sent); a message with nothing left to deliver
// loses its spooled bytes at once. It reports whether anything changed.
func (q *Queue) DeleteQueued(ctx context.Context, id string) (bool, error) {
	ok, err := q.store.DeleteQueued(ctx, id, q.now())
	if err != nil || !ok {
		return ok, err
	}
	if m, err := q.store.Message(ctx, id); err == nil && m.State == "done" {
		if err := q.spool.Remove(id, m.Spool); err != nil {
			q.log.Warn("removing spool file failed (removed at next start)", "msgid", id, "err", err)
		}
	}
	return true, nil
}

// Known reports whether mail was delivered to the external domain before.
func (q *Queue) Known(domain string) bool {
	_, ok := q.known.Load(strings.ToLower(domain))
	return ok
}

func (q *Queue) spoolDSN(orig *store.Message, failed []dsn.Recipient, now time.Time) (*pendingDSN, error) {
	id := NewID()
	w, err := q.spool.Create(id)
	if err != nil {
		return nil, err
	}
	var headers []byte
	if m, err := q.OpenDelivered(orig); err == nil {
		headers = dsn.ReadHeader(m.Reader(), 64<<10)
		m.Close()
	}
	subject, err := dsn.Write(w, dsn.Report{
		ReportingMTA: q.opt.Hostname, To: orig.MailFrom, OrigMsgID: orig.ID, Received: orig.ReceivedAt,
		Recipients: failed, Headers: headers, Date: now,
	})
	if err != nil {
		w.Abort()
		return nil, err
	}
	loc, durable, err := w.Commit()
	if err != nil {
		return nil, err
	}
	msg := &store.Message{ID: id, Direction: "dsn", MailFrom: "", ReceivedAt: now, Size: w.Size(), Subject: subject, State: "queued", Spool: loc}
	if orig.TLSRequest == store.TLSRequestRequire {
		// RFC 8689 §4.4: the report of a REQUIRETLS message goes back with
		// REQUIRETLS too (it quotes the original's header fields).
		msg.TLSRequest = store.TLSRequestRequire
	}
	rcpts := []store.Recipient{{Rcpt: orig.MailFrom, Route: q.route(orig.MailFrom), NextAttempt: now, LeaseUntil: now.Add(time.Hour)}}
	return &Pending{msg: msg, rcpts: rcpts, durable: durable}, nil
}
