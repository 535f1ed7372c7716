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
