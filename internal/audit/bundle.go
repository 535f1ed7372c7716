package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"sealpost/internal/store"
)

// BundleFormat names the evidence bundle format.
const BundleFormat = "sealpost-evidence/1"

// Bundle is an evidence bundle: events proven by signed checkpoints to
// anyone with the installation's public key (see the package doc).
type Bundle struct {
	Format    string        `json:"format"`
	Created   string        `json:"created"`
	Subject   BundleSubject `json:"subject"`
	PublicKey string        `json:"public_key"` // Ed25519, base64
	Segments  []Segment     `json:"segments"`
}

// BundleSubject is what the bundle is about.
type BundleSubject struct {
	Message string `json:"message,omitempty"`
	Address string `json:"address,omitempty"`
	From    string `json:"from,omitempty"`
	To      string `json:"to,omitempty"`
}

// Segment is every event between two consecutive checkpoints.
type Segment struct {
	From   *CheckpointJSON `json:"from"` // nil: the start of the log
	To     CheckpointJSON  `json:"to"`
	Events []BundleEvent   `json:"events"`
}

// BundleEvent is an event of a segment: proven (Fields) or only counted in
// the chain (Digest).
type BundleEvent struct {
	Seq    int64         `json:"seq"`
	Digest string        `json:"digest,omitempty"`
	Fields []BundleField `json:"fields,omitempty"`
}

// BundleField is one field of a proven event: disclosed (Value with its
// Salt) or redacted (its Commitment and a pseudonym).
type BundleField struct {
	Name       string `json:"name"`
	Value      string `json:"value"`
	Salt       string `json:"salt,omitempty"`
	Redacted   string `json:"redacted,omitempty"`
	Commitment string `json:"commitment,omitempty"`
}

// Selection says which events a bundle proves.
type Selection struct {
	Message string   // a message id
	Objects []string // with Message: the other ids of that message (its sealed copy)
	Address string   // every event about an address; other addresses redacted
	From    time.Time
	To      time.Time
}

func (s *Selection) matches(e *store.AuditEvent) bool {
	if s.Message != "" {
		if e.Object == s.Message {
			return true
		}
		for _, o := range s.Objects {
			if e.Object == o {
				return true
			}
		}
		return false
	}
	if strings.EqualFold(e.Actor, s.Address) || strings.EqualFold(e.Object, s.Address) {
		return true
	}
	for _, a := range e.Addrs {
		if strings.EqualFold(a, s.Address) {
			return true
		}
	}
	return false
}

// BuildBundle writes the bundle of the events sel selects. Every such
// event must be covered by a checkpoint (make one first).
func BuildBundle(ctx context.Context, st *store.Store, k *Keys, sel Selection, now time.Time) (*Bundle, error) {
	cps, err := st.AuditCheckpoints(ctx)
	if err != nil {
		return nil, err
	}
	anchor, err := st.AuditAnchor(ctx)
	if err != nil {
		return nil, err
	}
	// Which checkpoint covers each selected event.
	bySeg := map[int]map[int64]bool{}
	err = st.EachAuditEvent(ctx, sel.From, sel.To, func(e *store.AuditEvent) error {
		if !sel.matches(e) {
			return nil
		}
		i := sort.Search(len(cps), func(i int) bool { return cps[i].Seq >= e.Seq })
		if i == len(cps) {
			return fmt.Errorf("event %d is not covered by a signed checkpoint yet", e.Seq)
		}
		if bySeg[i] == nil {
			bySeg[i] = map[int64]bool{}
		}
		bySeg[i][e.Seq] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(bySeg) == 0 {
		return nil, fmt.Errorf("the audit log holds no event about it")
	}
	b := &Bundle{Format: BundleFormat, Created: now.UTC().Format(time.RFC3339), PublicKey: base64.StdEncoding.EncodeToString(k.Public()),
		Subject: BundleSubject{Message: sel.Message, Address: sel.Address}}
	if !sel.From.IsZero() {
		b.Subject.From = sel.From.UTC().Format(time.RFC3339)
	}
	if !sel.To.IsZero() {
		b.Subject.To = sel.To.UTC().Format(time.RFC3339)
	}
	var idx []int
	for i := range bySeg {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	chain := Chain{Keys: k}
	for _, i := range idx {
		to := cps[i]
		var from *store.AuditCheckpoint
		switch {
		case i > 0:
			from = cps[i-1]
		case to.N != 1 && anchor != nil && to.N == anchor.N+1:
			from = anchor
		case to.N != 1:
			return nil, fmt.Errorf("checkpoint %d has no earlier checkpoint to start its segment from", to.N)
		}
		seg := Segment{To: ToJSON(to)}
		var start int64
		var h []byte
		if from != nil {
			j := ToJSON(from)
			seg.From, start, h = &j, from.Seq, from.Hash
		}
		err := st.EachAuditEventSeq(ctx, start+1, to.Seq, func(e *store.AuditEvent) error {
			o := chain.open(e)
			h = ChainHash(h, o.digest)
			if !bytes.Equal(h, e.Hash) {
				return fmt.Errorf("event %d does not verify; run `sealpost audit verify`", e.Seq)
			}
			if !bySeg[i][e.Seq] {
				seg.Events = append(seg.Events, BundleEvent{Seq: e.Seq, Digest: hex.EncodeToString(o.digest)})
				return nil
			}
			seg.Events = append(seg.Events, BundleEvent{Seq: e.Seq, Fields: disclose(k, o, sel.Address)})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if int64(len(seg.Events)) != to.Seq-start || !bytes.Equal(h, to.Hash) {
			return nil, fmt.Errorf("the events up to checkpoint %d do not verify; run `sealpost audit verify`", to.N)
		}
		b.Segments = append(b.Segments, seg)
	}
	return b, nil
}

// disclose gives an event's fields, redacting, in an address bundle, every
// address but the subject's (and a detail that mentions one).
func disclose(k *Keys, o *opened, subject string) []BundleField {
	out := make([]BundleField, len(o.fields))
	var others []string
	for i, f := range o.fields {
		out[i] = BundleField{Name: f.Name, Value: f.Value, Salt: hex.EncodeToString(o.salts[i])}
		isAddr := f.Name == "actor" || f.Name == "object" || f.Name == "addr"
		if subject != "" && isAddr && strings.Contains(f.Value, "@") && !strings.EqualFold(f.Value, subject) {
			others = append(others, strings.ToLower(f.Value))
			out[i] = BundleField{Name: f.Name, Redacted: k.PseudonymOf(f.Value), Commitment: hex.EncodeToString(o.commitments[i])}
		}
	}
	for i, f := range o.fields {
		if f.Name != "detail" {
			continue
		}
		for _, a := range others {
			if strings.Contains(strings.ToLower(f.Value), a) {
				out[i] = BundleField{Name: f.Name, Redacted: "detail naming another party", Commitment: hex.EncodeToString(o.commitments[i])}
				break
			}
		}
	}
	return out
}

// ProvenEvent is an event a bundle proves.
type ProvenEvent struct {
	Seq    int64
	Fields []BundleField
}

// Get returns the named field's value ("" if redacted or absent) and for
// "at" the time it stands for.
func (p *ProvenEvent) Get(name string) string {
	for _, f := range p.Fields {
		if f.Name == name {
			if f.Redacted != "" {
				return "[" + f.Redacted + "]"
			}
			if name == "at" {
				if ms, err := strconv.ParseInt(f.Value, 10, 64); err == nil {
					return time.UnixMilli(ms).UTC().Format(time.RFC3339Nano)
				}
			}
			return f.Value
		}
	}
	return ""
}

// BundleReport is what a bundle proves.
type BundleReport struct {
	PublicKey   string
	Checkpoints int
	Events      []ProvenEvent
}

var fieldOrder = []string{"at", "actor", "action", "object", "ip", "ua", "detail"}

// VerifyBundle checks a bundle with its own public key, or with pin if set
// (the key the installation published). The error names the problem.
func VerifyBundle(b *Bundle, pin ed25519.PublicKey) (*BundleReport, error) {
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("not an evidence bundle (format %q, want %q)", b.Format, BundleFormat)
	}
	pub, err := base64.StdEncoding.DecodeString(b.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("the bundle's public key is not an Ed25519 key")
	}
	if pin != nil && !bytes.Equal(pin, pub) {
		return nil, fmt.Errorf("the bundle is signed with key %s, not with the key given", b.PublicKey)
	}
	if len(b.Segments) == 0 {
		return nil, fmt.Errorf("the bundle holds no events")
	}
	rep := &BundleReport{PublicKey: b.PublicKey}
	for si, s := range b.Segments {
		to, err := FromJSON(s.To)
		if err != nil {
			return nil, fmt.Errorf("segment %d: checkpoint: %v", si+1, err)
		}
		if !VerifyCheckpoint(pub, to) {
			return nil, fmt.Errorf("segment %d: checkpoint %d is not signed by the bundle's key", si+1, to.N)
		}
		var start int64
		var h []byte
		if s.From != nil {
			from, err := FromJSON(*s.From)
			if err != nil {
				return nil, fmt.Errorf("segment %d: checkpoint: %v", si+1, err)
			}
			if !VerifyCheckpoint(pub, from) {
				return nil, fmt.Errorf("segment %d: checkpoint %d is not signed by the bundle's key", si+1, from.N)
			}
			if to.N != from.N+1 || !bytes.Equal(to.Prev, CheckpointDigest(from)) || to.Count != to.Seq-from.Seq {
				return nil, fmt.Errorf("segment %d: checkpoint %d does not follow checkpoint %d", si+1, to.N, from.N)
			}
			start, h = from.Seq, from.Hash
			rep.Checkpoints++
		} else if to.N != 1 || to.Count != to.Seq || len(to.Prev) != 0 {
			return nil, fmt.Errorf("segment %d: checkpoint %d is not the first, so the segment needs the one before it", si+1, to.N)
		}
		rep.Checkpoints++
		if int64(len(s.Events)) != to.Seq-start {
			return nil, fmt.Errorf("segment %d: %d events, but checkpoints %d covers events %d to %d: events were removed or added", si+1, len(s.Events), to.N, start+1, to.Seq)
		}
		for ei, e := range s.Events {
			if e.Seq != start+int64(ei)+1 {
				return nil, fmt.Errorf("segment %d: event %d is out of order", si+1, e.Seq)
			}
			d, err := eventDigest(e)
			if err != nil {
				return nil, fmt.Errorf("event %d: %v", e.Seq, err)
			}
			h = ChainHash(h, d)
			if len(e.Fields) > 0 {
				rep.Events = append(rep.Events, ProvenEvent{Seq: e.Seq, Fields: e.Fields})
			}
		}
		if !bytes.Equal(h, to.Hash) {
			return nil, fmt.Errorf("segment %d: the events do not lead to the head signed by checkpoint %d: an event was changed, added or removed", si+1, to.N)
		}
	}
	if len(rep.Events) == 0 {
		return nil, fmt.Errorf("the bundle proves no event")
	}
	return rep, nil
}

func eventDigest(e BundleEvent) ([]byte, error) {
	if len(e.Fields) == 0 {
		d, err := hex.DecodeString(e.Digest)
		if err != nil || len(d) != 32 {
			return nil, fmt.Errorf("digest is not 32 bytes of hex")
		}
		return d, nil
	}
	cs := make([][]byte, len(e.Fields))
	for i, f := range e.Fields {
		want := "addr"
		if i < len(fieldOrder) {
			want = fieldOrder[i]
		}
		if f.Name != want {
			return nil, fmt.Errorf("field %d is %q, want %q", i+1, f.Name, want)
		}
		if f.Salt != "" {
			s, err := hex.DecodeString(f.Salt)
			if err != nil || len(s) != 16 {
				return nil, fmt.Errorf("field %s: the salt is not 16 bytes of hex", f.Name)
			}
			cs[i] = Commitment(i, s, Field{f.Name, f.Value})
			continue
		}
		c, err := hex.DecodeString(f.Commitment)
		if err != nil || len(c) != 32 {
			return nil, fmt.Errorf("field %s: neither disclosed nor a 32-byte commitment", f.Name)
		}
		cs[i] = c
	}
	if len(cs) < len(fieldOrder) {
		return nil, fmt.Errorf("%d fields, want at least %d", len(cs), len(fieldOrder))
	}
	return Digest(e.Seq, cs), nil
}
