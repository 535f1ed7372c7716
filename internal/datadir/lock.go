// Package datadir guards a sealpost data directory against two owners.
//
// Two gateways on one data directory would each sweep the other's spool
// files as orphans and release the other's delivery leases. So `serve`
// takes an exclusive lock on DIR/lock before it touches anything in the
// directory, and holds it until it exits; the command-line tools that
// change state take the same lock when no gateway runs (and talk to the
// gateway through its control socket when one does).
//
// The lock is flock(2) on the file, not the file's existence: the kernel
// releases it when the process dies (kill -9, power cut), so a stale lock
// file never keeps a gateway from starting. The file holds the owner's PID,
// for the message that names who holds it.
package datadir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// LockFile is the name of the lock file in the data directory.
const LockFile = "lock"

// InUseError says another process holds the data directory.
type InUseError struct {
	Dir string
	PID int // 0 when the holder's PID could not be read
}

func (e *InUseError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("data directory %s in use by PID %d", e.Dir, e.PID)
	}
	return fmt.Sprintf("data directory %s in use by another process", e.Dir)
}

// Lock is a held data-directory lock.
type Lock struct {
	f *os.File
}

// Acquire creates dir if needed (mode 0700) and takes its lock without
// waiting. A held lock is an *InUseError; any other error says why the
// directory cannot be used (it is not writable, not a directory, ...).
func Acquire(dir string) (*Lock, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cannot create it: %w", unwrapPath(err))
	}
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cannot write in it: %w", unwrapPath(err))
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &InUseError{Dir: dir, PID: readPID(f)}
		}
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	// The PID is written only while the lock is held, so a reader that
	// fails to lock sees the holder's PID (or, for an instant, nothing).
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("cannot write in it: %w", unwrapPath(err))
		}
	} else {
		f.Close()
		return nil, fmt.Errorf("cannot write in it: %w", unwrapPath(err))
	}
	return &Lock{f: f}, nil
}

// Holder returns the PID written in dir's lock file if a process holds the
// lock, and 0 if nobody does. It does not take the lock.
func Holder(dir string) (int, error) {
	f, err := os.Open(filepath.Join(dir, LockFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// A shared lock succeeds only when no one holds the exclusive one.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err == nil {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return 0, nil
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		return 0, err
	}
	return readPID(f), nil
}

// Release gives the lock up. The file stays: removing it would let a
// process that opened it before the removal lock a file nobody else sees.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, err := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	if err != nil {
		return 0
	}
	return pid
}

// unwrapPath drops the *os.PathError's operation ("open /x/lock: ...")
// so that messages read "cannot write in it: permission denied"; the
// caller names the directory.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
