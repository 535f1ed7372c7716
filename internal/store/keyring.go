package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// keyringSchema holds recipients' public keys: OpenPGP certificates and
// X.509 certificates alike (internal/keyring parses and judges them; the
// store only keeps rows). A key is indexed by every address it names, so
// that a lookup is one indexed query.
const keyringSchema = `
CREATE TABLE IF NOT EXISTS recipient_keys (
	fingerprint TEXT PRIMARY KEY,
	kind        TEXT NOT NULL,
	source      TEXT NOT NULL,
	fetched_at  INTEGER NOT NULL,
	expires_at  INTEGER NOT NULL DEFAULT 0,
	trust       TEXT NOT NULL,
	raw         BLOB NOT NULL,
	staff       INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS recipient_key_addrs (
	address     TEXT NOT NULL,
	fingerprint TEXT NOT NULL,
	PRIMARY KEY (address, fingerprint)
);
CREATE INDEX IF NOT EXISTS recipient_key_addrs_fpr ON recipient_key_addrs(fingerprint);
`

// KeyRow is one stored recipient key. Times are the zero time when unset.
type KeyRow struct {
	Fingerprint string // upper-case hex (OpenPGP) or SHA-256 of the DER (X.509)
	Kind        string // "pgp" or "x509"
	Addresses   []string
	Source      string // "operator", "wkd", "harvested"
	FetchedAt   time.Time
	ExpiresAt   time.Time
	Trust       string
	Raw         []byte
	// Staff: an organisation's own address whose key is published by
	// sealpost's WKD.
	Staff bool
}

// PutKey inserts or replaces a key and its addresses in one transaction.
func (s *Store) PutKey(ctx context.Context, k *KeyRow) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	exp := int64(0)
	if !k.ExpiresAt.IsZero() {
		exp = k.ExpiresAt.Unix()
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO recipient_keys (fingerprint, kind, source, fetched_at, expires_at, trust, raw, staff) VALUES (?,?,?,?,?,?,?,?)
		ON CONFLICT(fingerprint) DO UPDATE SET kind=excluded.kind, source=excluded.source, fetched_at=excluded.fetched_at,
		expires_at=excluded.expires_at, trust=excluded.trust, raw=excluded.raw, staff=excluded.staff`,
		k.Fingerprint, k.Kind, k.Source, k.FetchedAt.Unix(), exp, k.Trust, k.Raw, boolInt(k.Staff)); err != nil {
		return fmt.Errorf("storing key %s: %w", k.Fingerprint, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recipient_key_addrs WHERE fingerprint=?`, k.Fingerprint); err != nil {
		return err
	}
	for _, a := range k.Addresses {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO recipient_key_addrs (address, fingerprint) VALUES (?,?)`, strings.ToLower(a), k.Fingerprint); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DeleteKey removes a key; ErrNotFound if there is none.
func (s *Store) DeleteKey(ctx context.Context, fingerprint string) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM recipient_keys WHERE fingerprint=?`, fingerprint)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM recipient_key_addrs WHERE fingerprint=?`, fingerprint); err != nil {
		return err
	}
	return tx.Commit()
}

// KeysFor returns the keys naming address (lower-cased), of any source.
func (s *Store) KeysFor(ctx context.Context, address string) ([]KeyRow, error) {
	return s.keys(ctx, `WHERE k.fingerprint IN (SELECT fingerprint FROM recipient_key_addrs WHERE address=?)`, strings.ToLower(address))
}

// ListKeys returns every stored key, ordered by fingerprint.
func (s *Store) ListKeys(ctx context.Context) ([]KeyRow, error) {
	return s.keys(ctx, ``)
}

func (s *Store) keys(ctx context.Context, where string, args ...any) ([]KeyRow, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT k.fingerprint, k.kind, k.source, k.fetched_at, k.expires_at, k.trust, k.raw, k.staff,
		COALESCE((SELECT group_concat(address, char(10)) FROM recipient_key_addrs a WHERE a.fingerprint=k.fingerprint), '')
		FROM recipient_keys k `+where+` ORDER BY k.fingerprint`, args...)
	if err != nil {
		return nil, fmt.Errorf("reading keys: %w", err)
	}
	defer rows.Close()
	var out []KeyRow
	for rows.Next() {
		var k KeyRow
		var fetched, exp, staff int64
		var addrs string
		if err := rows.Scan(&k.Fingerprint, &k.Kind, &k.Source, &fetched, &exp, &k.Trust, &k.Raw, &staff, &addrs); err != nil {
			return nil, err
		}
		k.FetchedAt = time.Unix(fetched, 0)
		if exp != 0 {
			k.ExpiresAt = time.Unix(exp, 0)
		}
		k.Staff = staff != 0
		if addrs != "" {
			k.Addresses = strings.Split(addrs, "\n")
		}
		out = append(out, k)
	}
	return out, rows.Err()
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// KeyByFingerprint returns the key with fingerprint (none or one row).
func (s *Store) KeyByFingerprint(ctx context.Context, fingerprint string) ([]KeyRow, error) {
	return s.keys(ctx, `WHERE k.fingerprint=?`, fingerprint)
}
