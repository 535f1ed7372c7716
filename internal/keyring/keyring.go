// Package keyring keeps recipients' public keys (OpenPGP certificates and
// X.509 certificates) with their provenance, and finds the key for an
// address by a discovery ladder, most authoritative source first:
//
//  1. the operator's store (`sealpost keys add`);
//  2. the recipient domain's Web Key Directory over verified HTTPS (see
//     WKD), cached with the time fetched and fetched again when stale;
//  3. keys harvested from signed inbound mail that passed DMARC (Harvest).
//
// Only these authoritative sources make sealpost encrypt automatically.
// A key that is revoked, expired or has no valid user ID for the address
// is never returned as usable; the ladder says why it was passed over.
package keyring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"sealpost/internal/store"
)

// trustOf is what vouches for the binding of key and address, per source.
func trustOf(source string) string {
	switch source {
	case SourceOperator:
		return "operator"
	case SourceWKD:
		return "domain-https"
	case SourceHarvested:
		return "dmarc-pass"
	}
	return "none"
}

// Keyring is the key store and the discovery ladder.
type Keyring struct {
	Store *store.Store
	// WKD, when not nil, is asked for addresses the operator has no key
	// for.
	WKD *WKD
	// MaxAge: a WKD key fetched longer ago is fetched again before use
	// (default 24h). NegativeTTL: how long "no key" from a WKD is believed
	// (default 1h), so that every message to a keyless domain does not
	// wait for its web server.
	MaxAge, NegativeTTL time.Duration
	Now                 func() time.Time
	Log                 *slog.Logger

	mu  sync.Mutex
	neg map[string]time.Time // address -> when WKD last said "none"
}

func (k *Keyring) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

func (k *Keyring) maxAge() time.Duration {
	if k.MaxAge > 0 {
		return k.MaxAge
	}
	return 24 * time.Hour
}

// Add parses data (see Parse) and stores every key in it as the
// operator's; staff marks keys of the organisation's own addresses, which
// sealpost's WKD publishes.
func (k *Keyring) Add(ctx context.Context, data []byte, staff bool) ([]Key, error) {
	keys, err := Parse(data)
	if err != nil {
		return nil, err
	}
	now := k.now()
	for i := range keys {
		if len(keys[i].Addresses) == 0 {
			return nil, fmt.Errorf("key %s names no email address (OpenPGP user ID or X.509 SAN rfc822Name)", keys[i].Fingerprint)
		}
		keys[i].Source, keys[i].Trust, keys[i].Fetched, keys[i].Staff = SourceOperator, trustOf(SourceOperator), now, staff
		if err := k.Store.PutKey(ctx, toRow(&keys[i])); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// Remove deletes the key with fingerprint (any case); store.ErrNotFound if
// there is none.
func (k *Keyring) Remove(ctx context.Context, fingerprint string) error {
	return k.Store.DeleteKey(ctx, strings.ToUpper(strings.TrimSpace(fingerprint)))
}

// List returns every stored key.
func (k *Keyring) List(ctx context.Context) ([]Key, error) {
	rows, err := k.Store.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	return fromRows(rows), nil
}

// Staff returns the usable staff keys for address (WKD serving).
func (k *Keyring) Staff(ctx context.Context, address string) ([]Key, error) {
	rows, err := k.Store.KeysFor(ctx, address)
	if err != nil {
		return nil, err
	}
	var out []Key
	for _, cert := range fromRows(rows) {
		if cert.Staff && cert.Kind == KindPGP && cert.Unusable(address, k.now()) == "" {
			out = append(out, cert)
		}
	}
	return out, nil
}

// Step is one rung of the ladder as a lookup saw it.
type Step struct {
	Source string `json:"source"`
	// Result: "found", "none", "skipped" (an earlier rung answered, or
	// the source is off), "error".
	Result string       `json:"result"`
	Detail string       `json:"detail,omitempty"`
	Keys   []Key        `json:"keys,omitempty"`   // usable keys found here
	Passed []Passed     `json:"passed,omitempty"` // keys found here but not usable
	WKD    []WKDAttempt `json:"wkd,omitempty"`
}

// Passed is a key the ladder found and did not use, and why.
type Passed struct {
	Fingerprint string `json:"fingerprint"`
	Kind        string `json:"kind"`
	Why         string `json:"why"`
}

// Answer is the result of a lookup: the usable keys of the first rung that
// had any, and the whole ladder.
type Answer struct {
	Address string `json:"address"`
	Keys    []Key  `json:"keys"`
	Source  string `json:"source,omitempty"`
	Why     string `json:"why,omitempty"` // when Keys is empty
	Ladder  []Step `json:"ladder"`
}

// Options of a lookup.
type Options struct {
	// All: ask every rung even after one answered (`keys lookup`); the
	// answer is still the first that had keys.
	All bool
	// Kind: only keys of this kind count ("" any).
	Kind string
	// Offline: do not ask the network (WKD answered from the cache only).
	Offline bool
}

// Lookup finds usable keys for address down the ladder. An error is
// returned only when the store cannot be read; a WKD that cannot be
// reached is a rung with result "error", so the caller falls back (to the
// portal) and says why.
func (k *Keyring) Lookup(ctx context.Context, address string, opt Options) (*Answer, error) {
	address = strings.ToLower(strings.TrimSpace(address))
	ans := &Answer{Address: address, Keys: []Key{}}
	rows, err := k.Store.KeysFor(ctx, address)
	if err != nil {
		return nil, err
	}
	stored := fromRows(rows)
	now := k.now()
	judge := func(src string, keys []Key) Step {
		st := Step{Source: src, Result: "none"}
		for _, cert := range keys {
			if opt.Kind != "" && cert.Kind != opt.Kind {
				continue
			}
			if why := cert.Unusable(address, now); why != "" {
				st.Passed = append(st.Passed, Passed{Fingerprint: cert.Fingerprint, Kind: cert.Kind, Why: why})
				continue
			}
			st.Keys = append(st.Keys, cert)
		}
		if len(st.Keys) > 0 {
			st.Result = "found"
		}
		return st
	}
	answer := func(st Step) {
		if len(ans.Keys) == 0 && len(st.Keys) > 0 {
			ans.Keys, ans.Source = st.Keys, st.Source
		}
		ans.Ladder = append(ans.Ladder, st)
	}
	done := func() bool { return len(ans.Keys) > 0 && !opt.All }

	answer(judge(SourceOperator, bySource(stored, SourceOperator)))
	if done() {
		ans.Ladder = append(ans.Ladder, Step{Source: SourceWKD, Result: "skipped"}, Step{Source: SourceHarvested, Result: "skipped"})
		return ans, nil
	}
	wkdStep, err := k.wkd(ctx, address, bySource(stored, SourceWKD), opt, judge)
	if err != nil {
		return nil, err
	}
	answer(wkdStep)
	if done() {
		ans.Ladder = append(ans.Ladder, Step{Source: SourceHarvested, Result: "skipped"})
		return ans, nil
	}
	answer(judge(SourceHarvested, bySource(stored, SourceHarvested)))
	if len(ans.Keys) == 0 {
		var why []string
		for _, st := range ans.Ladder {
			d := st.Source + ": " + st.Result
			if st.Detail != "" {
				d += " (" + st.Detail + ")"
			}
			for _, p := range st.Passed {
				d += "; key " + p.Fingerprint + " not usable: " + p.Why
			}
			why = append(why, d)
		}
		ans.Why = "no usable key for " + address + ": " + strings.Join(why, "; ")
	}
	return ans, nil
}

// wkd is the WKD rung: a fresh cached answer, else a fetch whose result
// replaces the cache.
func (k *Keyring) wkd(ctx context.Context, address string, cached []Key, opt Options, judge func(string, []Key) Step) (Step, error) {
	now := k.now()
	fresh := len(cached) > 0
	for _, c := range cached {
		fresh = fresh && now.Sub(c.Fetched) < k.maxAge()
	}
	if fresh || (opt.Offline && len(cached) > 0) {
		st := judge(SourceWKD, cached)
		st.Detail = "cached, fetched " + cached[0].Fetched.UTC().Format(time.RFC3339)
		return st, nil
	}
	if k.WKD == nil {
		return Step{Source: SourceWKD, Result: "skipped", Detail: "Web Key Directory lookups are off"}, nil
	}
	if opt.Offline {
		return Step{Source: SourceWKD, Result: "skipped", Detail: "offline"}, nil
	}
	if t, ok := k.negative(address, now); ok {
		return Step{Source: SourceWKD, Result: "none", Detail: "no key published (asked " + t.UTC().Format(time.RFC3339) + ")"}, nil
	}
	keys, tries, err := k.WKD.Fetch(ctx, address)
	if err != nil {
		st := Step{Source: SourceWKD, Result: "error", Detail: err.Error(), WKD: tries}
		if errors.Is(err, ErrNoKey) {
			st.Result, st.Detail = "none", "no key published"
			k.setNegative(address, now)
			// The domain no longer publishes a key: a cached one goes.
			for _, c := range cached {
				if err := k.Store.DeleteKey(ctx, c.Fingerprint); err != nil && !errors.Is(err, store.ErrNotFound) {
					return st, err
				}
			}
		}
		return st, nil
	}
	keep := map[string]bool{}
	for i := range keys {
		keys[i].Source, keys[i].Trust, keys[i].Fetched = SourceWKD, trustOf(SourceWKD), now
		keep[keys[i].Fingerprint] = true
		if err := k.putUnlessOperator(ctx, &keys[i]); err != nil {
			return Step{}, err
		}
	}
	for _, c := range cached {
		if !keep[c.Fingerprint] {
			if err := k.Store.DeleteKey(ctx, c.Fingerprint); err != nil && !errors.Is(err, store.ErrNotFound) {
				return Step{}, err
			}
		}
	}
	st := judge(SourceWKD, keys)
	st.WKD = tries
	st.Detail = "fetched"
	return st, nil
}

func (k *Keyring) negative(address string, now time.Time) (time.Time, bool) {
	ttl := k.NegativeTTL
	if ttl <= 0 {
		ttl = time.Hour
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	t, ok := k.neg[address]
	return t, ok && now.Sub(t) < ttl
}

func (k *Keyring) setNegative(address string, now time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.neg == nil {
		k.neg = map[string]time.Time{}
	}
	k.neg[address] = now
}

// putUnlessOperator stores a discovered key unless the operator holds the
// same key: the operator's row (and its addresses) stays as it is.
func (k *Keyring) putUnlessOperator(ctx context.Context, cert *Key) error {
	rows, err := k.Store.KeyByFingerprint(ctx, cert.Fingerprint)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if r.Source == SourceOperator {
			return nil
		}
		if r.Source != cert.Source {
			// Keep every address the cert was already known for.
			cert.Addresses = union(cert.Addresses, r.Addresses)
		}
	}
	return k.Store.PutKey(ctx, toRow(cert))
}

// Harvest keeps the keys in data (an OpenPGP certificate or X.509
// certificate carried by a signed inbound message) for address, the
// message's authenticated From: address. The inbound path calls it only
// for mail whose signature verified and that passed DMARC (dmarcPass); any
// other mail is refused, as is a key that does not name address. Only
// address is recorded for the key, whatever else it names.
func (k *Keyring) Harvest(ctx context.Context, address string, data []byte, dmarcPass bool) ([]Key, error) {
	if !dmarcPass {
		return nil, errors.New("not harvested: the message did not pass DMARC")
	}
	address = strings.ToLower(address)
	keys, err := Parse(data)
	if err != nil {
		return nil, err
	}
	now := k.now()
	var out []Key
	for _, key := range keys {
		if key.Unusable(address, now) != "" {
			continue
		}
		key.Addresses = []string{address}
		key.Source, key.Trust, key.Fetched = SourceHarvested, trustOf(SourceHarvested), now
		if err := k.putUnlessOperator(ctx, &key); err != nil {
			return nil, err
		}
		out = append(out, key)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("not harvested: no usable key for %s", address)
	}
	return out, nil
}

func bySource(keys []Key, src string) []Key {
	var out []Key
	for _, k := range keys {
		if k.Source == src {
			out = append(out, k)
		}
	}
	return out
}

func union(a, b []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range append(append([]string(nil), a...), b...) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

func toRow(k *Key) *store.KeyRow {
	return &store.KeyRow{Fingerprint: k.Fingerprint, Kind: k.Kind, Addresses: k.Addresses, Source: k.Source,
		FetchedAt: k.Fetched, ExpiresAt: k.Expires, Trust: k.Trust, Raw: k.Raw, Staff: k.Staff}
}

func fromRows(rows []store.KeyRow) []Key {
	out := make([]Key, 0, len(rows))
	for _, r := range rows {
		parsed, err := Parse(r.Raw)
		var k Key
		if err == nil && len(parsed) == 1 {
			k = parsed[0]
		} else {
			k = Key{Kind: r.Kind, Fingerprint: r.Fingerprint, Raw: r.Raw}
		}
		k.Addresses, k.Source, k.Fetched, k.Trust, k.Staff = r.Addresses, r.Source, r.FetchedAt, r.Trust, r.Staff
		if !r.ExpiresAt.IsZero() {
			k.Expires = r.ExpiresAt
		}
		out = append(out, k)
	}
	return out
}
