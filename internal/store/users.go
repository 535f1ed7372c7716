package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// User is a console or SMTP AUTH user.
type User struct {
	Name         string
	PasswordHash string
	Role         string // "admin", "auditor" or "sender"
	Disabled     bool
	CreatedAt    time.Time
	// Addresses an SMTP AUTH session of the user may send as (MAIL FROM
	// and header From), lower case. Filled by AddUser and Users.
	Addresses []string
}

// ErrExists is returned when adding a row that exists.
var ErrExists = errors.New("already exists")

// AddUser adds a user with its addresses.
func (s *Store) AddUser(ctx context.Context, u *User) error {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name=?`, u.Name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrExists
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO users (name, password_hash, role, disabled, created_at) VALUES (?,?,?,0,?)`, u.Name, u.PasswordHash, u.Role, ms(time.Now())); err != nil {
		return err
	}
	for _, a := range u.Addresses {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO user_addresses (user, address) VALUES (?,?)`, u.Name, strings.ToLower(a)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// AddUserAddress lets user send as address too; it reports whether the
// address is new for the user.
func (s *Store) AddUserAddress(ctx context.Context, name, address string) (bool, error) {
	if _, err := s.GetUser(ctx, name); err != nil {
		return false, err
	}
	res, err := s.DB.ExecContext(ctx, `INSERT OR IGNORE INTO user_addresses (user, address) VALUES (?,?)`, name, strings.ToLower(address))
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RemoveUserAddress withdraws an address from user (ErrNotFound if the
// user did not have it).
func (s *Store) RemoveUserAddress(ctx context.Context, name, address string) error {
	res, err := s.DB.ExecContext(ctx, `DELETE FROM user_addresses WHERE user=? AND address=?`, name, strings.ToLower(address))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// UserAddresses returns the addresses user may send as, sorted.
func (s *Store) UserAddresses(ctx context.Context, name string) ([]string, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT address FROM user_addresses WHERE user=? ORDER BY address`, name)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// GetUser returns one user.
func (s *Store) GetUser(ctx context.Context, name string) (*User, error) {
	var u User
	var dis int
	var created int64
	err := s.DB.QueryRowContext(ctx, `SELECT name, password_hash, role, disabled, created_at FROM users WHERE name=?`, name).Scan(&u.Name, &u.PasswordHash, &u.Role, &dis, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	u.Disabled, u.CreatedAt = dis != 0, fromMS(created)
	return &u, nil
}

// Users lists all users with their addresses.
func (s *Store) Users(ctx context.Context) ([]User, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT name, role, disabled, created_at FROM users ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var dis int
		var created int64
		if err := rows.Scan(&u.Name, &u.Role, &dis, &created); err != nil {
			return nil, err
		}
		u.Disabled, u.CreatedAt = dis != 0, fromMS(created)
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	addrs, err := s.DB.QueryContext(ctx, `SELECT user, address FROM user_addresses ORDER BY user, address`)
	if err != nil {
		return nil, err
	}
	defer addrs.Close()
	byUser := map[string][]string{}
	for addrs.Next() {
		var u, a string
		if err := addrs.Scan(&u, &a); err != nil {
			return nil, err
		}
		byUser[u] = append(byUser[u], a)
	}
	for i := range out {
		out[i].Addresses = byUser[out[i].Name]
	}
	return out, addrs.Err()
}

// SetUserDisabled disables or enables a user.
func (s *Store) SetUserDisabled(ctx context.Context, name string, disabled bool) error {
	v := 0
	if disabled {
		v = 1
	}
	res, err := s.DB.ExecContext(ctx, `UPDATE users SET disabled=? WHERE name=?`, v, name)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// TOTPSecret returns a user's sealed TOTP secret ("" if not enrolled).
func (s *Store) TOTPSecret(ctx context.Context, name string) (string, error) {
	var v string
	err := s.DB.QueryRowContext(ctx, `SELECT totp FROM users WHERE name=?`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotFound
	}
	return v, err
}

// SetTOTPSecret stores a user's sealed TOTP secret.
func (s *Store) SetTOTPSecret(ctx context.Context, name, sealed string) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE users SET totp=? WHERE name=?`, sealed, name)
	return err
}

// UseTOTPStep records that user signed in with a TOTP code of time step
// step; it reports false, changing nothing, when a code of that step or a
// later one was used already (a replay). One statement, so two requests
// racing with the same code cannot both win.
func (s *Store) UseTOTPStep(ctx context.Context, name string, step int64) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE users SET totp_step=? WHERE name=? AND totp_step<?`, step, name, step)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// PutConsoleSession records a console session; stage is "totp" (password
// checked, second factor pending), "enroll" (admin must set up TOTP) or "ok".
func (s *Store) PutConsoleSession(ctx context.Context, hash []byte, user, stage string, expires time.Time) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO console_sessions (id_hash, user, stage, expires_at) VALUES (?,?,?,?)
		ON CONFLICT(id_hash) DO UPDATE SET stage=excluded.stage, expires_at=excluded.expires_at`, hash, user, stage, ms(expires))
	return err
}

// ConsoleSession returns the user and stage of a live console session.
func (s *Store) ConsoleSession(ctx context.Context, hash []byte, now time.Time) (user, stage string, err error) {
	err = s.DB.QueryRowContext(ctx, `SELECT user, stage FROM console_sessions WHERE id_hash=? AND expires_at>?`, hash, ms(now)).Scan(&user, &stage)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", ErrNotFound
	}
	return user, stage, err
}

// DeleteConsoleSession ends a console session.
func (s *Store) DeleteConsoleSession(ctx context.Context, hash []byte) error {
	_, err := s.DB.ExecContext(ctx, `DELETE FROM console_sessions WHERE id_hash=?`, hash)
	return err
}

// APIToken is a REST API token (stored hashed).
type APIToken struct {
	Name      string
	Hash      []byte
	Scope     string // "read" or "admin"
	CreatedAt time.Time
	LastUsed  time.Time
	Disabled  bool
}

// AddAPIToken adds a token.
func (s *Store) AddAPIToken(ctx context.Context, t *APIToken) error {
	_, err := s.DB.ExecContext(ctx, `INSERT INTO api_tokens (name, hash, scope, created_at) VALUES (?,?,?,?)`, t.Name, t.Hash, t.Scope, ms(time.Now()))
	if err != nil && strings.Contains(err.Error(), "UNIQUE") {
		return ErrExists
	}
	return err
}

// APITokenByHash finds a live token.
func (s *Store) APITokenByHash(ctx context.Context, hash []byte) (*APIToken, error) {
	t := &APIToken{Hash: hash}
	var c, l int64
	var dis int
	err := s.DB.QueryRowContext(ctx, `SELECT name, scope, created_at, last_used, disabled FROM api_tokens WHERE hash=?`, hash).Scan(&t.Name, &t.Scope, &c, &l, &dis)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	t.CreatedAt, t.LastUsed, t.Disabled = fromMS(c), fromMS(l), dis != 0
	if err == nil {
		s.DB.ExecContext(ctx, `UPDATE api_tokens SET last_used=? WHERE hash=?`, ms(time.Now()), hash)
	}
	return t, err
}

// APITokens lists the tokens.
func (s *Store) APITokens(ctx context.Context) ([]APIToken, error) {
	rows, err := s.DB.QueryContext(ctx, `SELECT name, scope, created_at, last_used, disabled FROM api_tokens ORDER BY name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []APIToken
	for rows.Next() {
		var t APIToken
		var c, l int64
		var dis int
		if err := rows.Scan(&t.Name, &t.Scope, &c, &l, &dis); err != nil {
			return nil, err
		}
		t.CreatedAt, t.LastUsed, t.Disabled = fromMS(c), fromMS(l), dis != 0
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeAPIToken disables a token; it reports whether one was found.
func (s *Store) RevokeAPIToken(ctx context.Context, name string) (bool, error) {
	res, err := s.DB.ExecContext(ctx, `UPDATE api_tokens SET disabled=1 WHERE name=?`, name)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n > 0, nil
}
