package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// User is a console or SMTP AUTH user.
type User struct {
	Name         string
	PasswordHash string
	Role         string // "admin", "auditor" or "sender"
	Disabled     bool
	CreatedAt    time.Time
}

// ErrExists is returned when adding a row that exists.
var ErrExists = errors.New("already exists")

// AddUser adds a user.
func (s *Store) AddUser(ctx context.Context, u *User) error {
	var n int
	if err := s.DB.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE name=?`, u.Name).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return ErrExists
	}
	_, err := s.DB.ExecContext(ctx, `INSERT INTO users (name, password_hash, role, disabled, created_at) VALUES (?,?,?,0,?)`, u.Name, u.PasswordHash, u.Role, ms(time.Now()))
	return err
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

// Users lists all users.
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
	return out, rows.Err()
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
