package queue

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"sealpost/internal/seal"
)

// Spool holds message files, each sealed under the installation's key with
// the message id as additional data. A file is written as an unnamed inode
// in q/ (O_TMPFILE), fsynced and linked into place under its id: one
// directory operation, and a crash before the link leaves nothing behind.
// Where O_TMPFILE is not supported it is written in tmp/ and renamed. One directory, not shards: a batch of acceptances then
// needs one directory fsync, whatever its size (ext4 and XFS index large
// directories).
type Spool struct {
	dir       string
	key       []byte
	noTmpfile atomic.Bool // O_TMPFILE refused once: use tmp/ and rename
}

// OpenSpool prepares the spool directories under dir.
func OpenSpool(dir string, key []byte) (*Spool, error) {
	if len(key) != seal.KeyLen {
		return nil, errors.New("spool: bad key length")
	}
	for _, d := range []string{"tmp", "q"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Spool{dir: dir, key: key}, nil
}

func (s *Spool) shardDir(string) string { return filepath.Join(s.dir, "q") }

func (s *Spool) path(id string) string { return filepath.Join(s.dir, "q", id) }

// ErrStorage marks failures of local storage (disk full, I/O error): the
// SMTP layer answers them with 452 4.3.1.
var ErrStorage = errors.New("spool storage failure")

func storageErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %s: disk full: %v", ErrStorage, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrStorage, op, err)
}

// SpoolWriter writes one message into the spool.
type SpoolWriter struct {
	s       *Spool
	id      string
	f       *os.File
	sw      *seal.Writer
	done    bool
	unnamed bool // O_TMPFILE: linked into place at commit
}

// Create starts a new spool file for message id.
func (s *Spool) Create(id string) (*SpoolWriter, error) {
	f, unnamed, err := s.createFile(id)
	if err != nil {
		return nil, storageErr("create", err)
	}
	sw, err := seal.NewWriter(f, s.key, []byte(id))
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, storageErr("seal", err)
	}
	return &SpoolWriter{s: s, id: id, f: f, sw: sw, unnamed: unnamed}, nil
}

func (w *SpoolWriter) Write(p []byte) (int, error) {
	n, err := w.sw.Write(p)
	if err != nil {
		return n, storageErr("write", err)
	}
	return n, nil
}

// Size is the number of message bytes written.
func (w *SpoolWriter) Size() int64 { return w.sw.Size() }

// Commit seals, fsyncs and renames the file into place. It returns the
// directory that must be fsynced before the file's queue row is committed.
func (w *SpoolWriter) Commit() (dir string, err error) {
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if err := w.sw.Close(); err != nil {
		return "", storageErr("write", err)
	}
	if err := w.f.Sync(); err != nil {
		return "", storageErr("fsync", err)
	}
	if w.unnamed {
		err = linkTmpfile(w.f, w.s.path(w.id))
	} else {
		err = os.Rename(w.f.Name(), w.s.path(w.id))
	}
	w.f.Close()
	if err != nil {
		return "", storageErr("link", err)
	}
	w.done = true
	return w.s.shardDir(w.id), nil
}

// Abort discards the file. Safe to call after a failed Commit.
func (w *SpoolWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	w.sw.Close() // returns its buffers; the file is removed anyway
	w.f.Close()
	if !w.unnamed {
		os.Remove(w.f.Name())
	}
}

// Message is an open spool file.
type Message struct {
	*seal.ReaderAt
	f *os.File
}

// Close closes the file.
func (m *Message) Close() error {
	m.ReaderAt.Release()
	return m.f.Close()
}

// Open opens message id for reading.
func (s *Spool) Open(id string) (*Message, error) {
	f, err := os.Open(s.path(id))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	ra, err := seal.NewReaderAt(f, st.Size(), s.key, []byte(id))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool file %s: %w", id, err)
	}
	return &Message{ReaderAt: ra, f: f}, nil
}

// Remove deletes message id's file; a missing file is not an error.
func (s *Spool) Remove(id string) error {
	err := os.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Sweep removes half-written files in tmp/ and files no queued message
// needs (left by a crash between rename and commit, or after delivery and
// before removal). It returns how many files it removed.
func (s *Spool) Sweep(keep map[string]bool) (int, error) {
	n := 0
	tmp, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return 0, err
	}
	for _, e := range tmp {
		if os.Remove(filepath.Join(s.dir, "tmp", e.Name())) == nil {
			n++
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "q"))
	if err != nil {
		return n, err
	}
	for _, e := range entries {
		if !keep[e.Name()] && !strings.HasPrefix(e.Name(), ".") {
			if os.Remove(filepath.Join(s.dir, "q", e.Name())) == nil {
				n++
			}
		}
	}
	return n, nil
}

// Copy streams message id to w (for tests and tools).
func (s *Spool) Copy(w io.Writer, id string) error {
	m, err := s.Open(id)
	if err != nil {
		return err
	}
	defer m.Close()
	_, err = io.Copy(w, m.Reader())
	return err
}
