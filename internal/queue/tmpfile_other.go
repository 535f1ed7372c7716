//go:build !linux

package queue

import (
	"errors"
	"os"
	"path/filepath"
)

func (s *Spool) createFile(id string) (*os.File, bool, error) {
	f, err := os.OpenFile(filepath.Join(s.dir, "tmp", id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	return f, false, err
}

func linkTmpfile(*os.File, string) error { return errors.New("O_TMPFILE is Linux only") }
