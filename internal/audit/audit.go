// Package audit keeps the audit log tamper-evident, checks it, and proves
// parts of it to others.
//
// # Threat model
//
// The attacker can write to the database (a stolen backup restored with
// changes, a compromised admin account, a process running as the gateway's
// user without the key file) but does not hold the installation key. They
// may change, insert, delete, reorder or recompute rows, delete checkpoints,
// forge a retention anchor or empty the tables. Every one of these must make
// Verify fail, naming what is wrong.
//
// # The chain
//
// Every field of an event (time, actor, action, object, client, user agent,
// detail, each address it is about) is committed to separately:
//
//	secret = HMAC(salt key, "event salt" ‖ seq)
//	salt_i = SHA-256("field salt" ‖ secret ‖ i)[:16]
//	c_i    = SHA-256("sealpost audit field v2" ‖ i ‖ salt_i ‖ name_i ‖ value_i)
//	D      = SHA-256("sealpost audit event v2" ‖ seq ‖ n ‖ c_0 ‖ … ‖ c_n-1)
//	H_seq  = SHA-256("sealpost audit chain v2" ‖ H_seq-1 ‖ D)        (column hash)
//	M_seq  = HMAC-SHA256(MAC key, M_seq-1 ‖ H_seq)                   (column mac)
//
// The salt and MAC keys are derived by HKDF from the installation key, each
// for its own purpose. Without the key nobody can compute a field's
// commitment, so nobody can recompute H or M after changing an event: the
// keyed link M is what Verify checks for every event, including the newest
// ones that no checkpoint covers yet.
//
// # Checkpoints and the witness
//
// Every minute with new events, at start and at shutdown, the gateway signs
// a checkpoint with an Ed25519 key derived from the installation key: its
// number N, the newest event Seq, how many events came since checkpoint N-1
// (Count), the time, H_Seq, M_Seq and the SHA-256 of checkpoint N-1's signed
// bytes. So checkpoints form a chain of their own, and a checkpoint deleted
// from the middle is missed by the next one.
//
// A checkpoint kept only in the database can be deleted with the events it
// covers. So each one is first appended, as one JSON line and fsynced, to the
// witness file (audit.witness_file: put it on another volume, or a file
// system the gateway may only append to) and sent to the system log; only
// then is it stored. Verify compares the store with the witness: a
// checkpoint in the witness but not in the store, events missing below the
// newest witnessed checkpoint, an emptied log, and events older than twice
// the checkpoint interval that no checkpoint covers all fail.
//
// Retention removes the oldest events up to a checkpoint and keeps that
// checkpoint as the anchor the chain continues from: an anchor must carry
// the installation's signature and match the witness, and events that
// start after 1 need such an anchor.
//
// # Evidence bundles
//
// An evidence bundle proves some events (about one message, or about one
// address) to someone who has only the installation's public key. A keyed
// link cannot be checked without the key, but the public chain H can: for
// each checkpoint that covers a proven event, the bundle holds the
// checkpoint before it and every event in between, each either in full
// (field values with their salts) or as its digest D alone. The verifier
// recomputes the commitments, D and H from the earlier checkpoint's head to
// the later one's and checks both signatures: any changed, added or removed
// event breaks the head. A field that must not be disclosed (another
// party's address in a subject-access bundle) is given as its commitment c_i
// and a keyed pseudonym (the same address gives the same pseudonym within
// the installation); its salt stays secret, so the commitment does not reveal
// the address to a dictionary search, and the event still verifies.
package audit

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"strconv"
	"strings"
	"sync"

	"sealpost/internal/store"
)

// Keys are the audit log's keys, each derived from the installation key
// for one purpose.
type Keys struct {
	Sign      ed25519.PrivateKey // checkpoints
	MAC       []byte             // the keyed link of each event
	Salt      []byte             // the salts of field commitments
	Pseudonym []byte             // redacted addresses in bundles

	// HMAC states ready for Reset: making one costs several times more
	// than using it, and every accepted message links three events.
	macs, salts sync.Pool
	linkers     sync.Pool
}

func (k *Keys) hmac(pool *sync.Pool, key []byte) hash.Hash {
	if h, ok := pool.Get().(hash.Hash); ok {
		h.Reset()
		return h
	}
	return hmac.New(sha256.New, key)
}

// Key derives the checkpoint signing key from the installation key.
func Key(master []byte) (ed25519.PrivateKey, error) {
	seed, err := hkdf.Key(sha256.New, master, nil, "sealpost audit checkpoints", ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// DeriveKeys derives every audit key from the installation key.
func DeriveKeys(master []byte) (*Keys, error) {
	k := &Keys{}
	var err error
	if k.Sign, err = Key(master); err != nil {
		return nil, err
	}
	for _, p := range []struct {
		dst  *[]byte
		info string
	}{{&k.MAC, "sealpost audit link mac"}, {&k.Salt, "sealpost audit field salts"}, {&k.Pseudonym, "sealpost audit pseudonyms"}} {
		if *p.dst, err = hkdf.Key(sha256.New, master, nil, p.info, 32); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// Public is the key that checks checkpoints.
func (k *Keys) Public() ed25519.PublicKey { return k.Sign.Public().(ed25519.PublicKey) }

// Field is one committed field of an event.
type Field struct {
	Name, Value string
}

// Fields lists an event's committed fields in their fixed order.
func Fields(e *store.AuditEvent) []Field {
	out := make([]Field, 0, 7+len(e.Addrs))
	out = append(out, Field{"at", strconv.FormatInt(e.At.UnixMilli(), 10)}, Field{"actor", e.Actor}, Field{"action", e.Action},
		Field{"object", e.Object}, Field{"ip", e.IP}, Field{"ua", e.UA}, Field{"detail", e.Detail})
	for _, a := range e.Addrs {
		out = append(out, Field{"addr", a})
	}
	return out
}

func u64(h hash.Hash, v int64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}

func lv(h hash.Hash, s []byte) {
	u64(h, int64(len(s)))
	h.Write(s)
}

// eventSecret is what event seq's salts are made from; it is never
// disclosed.
func eventSecret(mac hash.Hash, seq int64) []byte {
	mac.Reset()
	mac.Write([]byte("event salt"))
	u64(mac, seq)
	return mac.Sum(nil)
}

// salt is field i's salt: disclosing it (a bundle does) discloses neither
// the event's secret nor the other fields' salts.
func salt(secret []byte, i int) []byte {
	h := sha256.New()
	h.Write([]byte("field salt"))
	h.Write(secret)
	u64(h, int64(i))
	return h.Sum(nil)[:16]
}

// Commitment is field i's commitment.
func Commitment(i int, salt []byte, f Field) []byte {
	h := sha256.New()
	h.Write([]byte("sealpost audit field v2\x00"))
	u64(h, int64(i))
	lv(h, salt)
	lv(h, []byte(f.Name))
	lv(h, []byte(f.Value))
	return h.Sum(nil)
}

// Digest is an event's digest D over its field commitments.
func Digest(seq int64, commitments [][]byte) []byte {
	h := sha256.New()
	h.Write([]byte("sealpost audit event v2\x00"))
	u64(h, seq)
	u64(h, int64(len(commitments)))
	for _, c := range commitments {
		h.Write(c)
	}
	return h.Sum(nil)
}

// ChainHash is the public chain's head H after an event with digest d.
func ChainHash(prev, d []byte) []byte {
	h := sha256.New()
	h.Write([]byte("sealpost audit chain v2\x00"))
	lv(h, prev)
	h.Write(d)
	return h.Sum(nil)
}

// Chain links events with the installation's keys (store.AuditChain).
type Chain struct{ Keys *Keys }

// opened is an event's fields with their salts and commitments.
type opened struct {
	fields      []Field
	salts       [][]byte
	commitments [][]byte
	digest      []byte
}

func (c Chain) open(e *store.AuditEvent) *opened {
	o := &opened{fields: Fields(e)}
	mac := c.Keys.hmac(&c.Keys.salts, c.Keys.Salt)
	secret := eventSecret(mac, e.Seq)
	c.Keys.salts.Put(mac)
	for i, f := range o.fields {
		s := salt(secret, i)
		o.salts = append(o.salts, s)
		o.commitments = append(o.commitments, Commitment(i, s, f))
	}
	o.digest = Digest(e.Seq, o.commitments)
	return o
}

func (c Chain) mac(prevMAC, h []byte) []byte {
	m := c.Keys.hmac(&c.Keys.macs, c.Keys.MAC)
	defer c.Keys.macs.Put(m)
	lv(m, prevMAC)
	m.Write(h)
	return m.Sum(nil)
}

// links computes an event's H and M from the previous ones.
func (c Chain) links(prevHash, prevMAC []byte, e *store.AuditEvent) (h, m []byte) {
	h = ChainHash(prevHash, c.open(e).digest)
	return h, c.mac(prevMAC, h)
}

// Link implements store.AuditChain. It computes what links does (the
// verifier's reference) without building the opened event: one scratch
// buffer and sha256.Sum256 on the stack instead of a hasher, a salt and a
// commitment allocated per field. Every accepted message links three
// events on the accept and delivery paths, so this is the audit's CPU.
func (c Chain) Link(head store.AuditHead, e *store.AuditEvent) {
	l, _ := c.Keys.linkers.Get().(*linker)
	if l == nil {
		l = &linker{}
	}
	defer c.Keys.linkers.Put(l)

	mac := c.Keys.hmac(&c.Keys.salts, c.Keys.Salt)
	mac.Write([]byte("event salt"))
	l.buf = binary.BigEndian.AppendUint64(l.buf[:0], uint64(e.Seq))
	mac.Write(l.buf)
	l.secret = mac.Sum(l.secret[:0])
	c.Keys.salts.Put(mac)

	l.cs, l.n = l.cs[:0], 0
	field(l, "at", strconv.AppendInt(l.at[:0], e.At.UnixMilli(), 10))
	field(l, "actor", e.Actor)
	field(l, "action", e.Action)
	field(l, "object", e.Object)
	field(l, "ip", e.IP)
	field(l, "ua", e.UA)
	field(l, "detail", e.Detail)
	for _, a := range e.Addrs {
		field(l, "addr", a)
	}

	b := append(l.buf[:0], "sealpost audit event v2\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(l.n))
	b = append(b, l.cs...)
	d := sha256.Sum256(b)

	b = append(b[:0], "sealpost audit chain v2\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(head.Hash)))
	b = append(b, head.Hash...)
	b = append(b, d[:]...)
	h := sha256.Sum256(b)
	l.buf = b

	e.Hash = append([]byte(nil), h[:]...)
	e.MAC = c.mac(head.MAC, e.Hash)
}

// linker is Link's scratch space, reused through Keys.linkers.
type linker struct {
	buf, secret, cs []byte
	at              [20]byte
	n               int
}

// field appends field n's commitment (Commitment with salt(secret, n)),
// for a string or byte value without converting it.
func field[V string | []byte](l *linker, name string, value V) {
	b := append(l.buf[:0], "field salt"...)
	b = append(b, l.secret...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.n))
	salt := sha256.Sum256(b)
	b = append(b[:0], "sealpost audit field v2\x00"...)
	b = binary.BigEndian.AppendUint64(b, uint64(l.n))
	b = binary.BigEndian.AppendUint64(b, 16)
	b = append(b, salt[:16]...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint64(b, uint64(len(value)))
	b = append(b, value...)
	c := sha256.Sum256(b)
	l.cs = append(l.cs, c[:]...)
	l.buf = b
	l.n++
}

// PseudonymOf is the keyed stand-in for a redacted address.
func (k *Keys) PseudonymOf(addr string) string {
	m := hmac.New(sha256.New, k.Pseudonym)
	m.Write([]byte(strings.ToLower(addr)))
	return "party-" + hex.EncodeToString(m.Sum(nil)[:8])
}
