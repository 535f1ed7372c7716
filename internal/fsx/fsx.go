// Package fsx is the file layer under the spool, the portal's blobs and the
// master key: the few file operations whose order makes accepted data
// durable (create, write, fsync, link or rename, directory fsync, remove),
// behind an interface so that a test can put a file system under them that
// loses, at a simulated power cut, every write not yet synced (Fault).
//
// The rule the callers follow (and Fault enforces): data is durable once
// its file is fsynced; a name (a created, linked or renamed entry) is
// durable once its directory is fsynced. Neither implies the other.
package fsx

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// File is an open file.
type File interface {
	io.Reader
	io.Writer
	io.ReaderAt
	io.WriterAt
	io.Seeker
	io.Closer
	Name() string
	Sync() error
	Size() (int64, error)
	// Punch deallocates [off, off+n) and makes it read as zeros; where
	// the file system cannot, the range is overwritten with zeros.
	Punch(off, n int64) error
}

// FS is the file system the durable writers use.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	// CreateUnnamed makes a file in dir without a name (O_TMPFILE), to be
	// named by LinkUnnamed once complete; ErrUnsupported where it cannot.
	CreateUnnamed(dir string) (File, error)
	LinkUnnamed(f File, path string) error
	Rename(oldpath, newpath string) error
	Remove(name string) error
	// SyncDir makes the entries of dir (created, linked, renamed,
	// removed) durable.
	SyncDir(dir string) error
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string, perm os.FileMode) error
}

// ErrUnsupported is returned by CreateUnnamed and LinkUnnamed where unnamed
// files cannot be made or named.
var ErrUnsupported = errors.New("unnamed files not supported")

// OS is the real file system.
type OS struct {
	// ProcFD is where the process's descriptors are seen as paths,
	// "/proc/self/fd" when empty; LinkUnnamed names an O_TMPFILE inode
	// through it. Tests point it at a missing directory to act out a
	// system without /proc.
	ProcFD string
}

func (o OS) procFD() string {
	if o.ProcFD == "" {
		return "/proc/self/fd"
	}
	return o.ProcFD
}

type osFile struct{ *os.File }

func (f osFile) Size() (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

func (f osFile) Punch(off, n int64) error {
	if n <= 0 {
		return nil
	}
	err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.ENOSYS) {
		return err
	}
	return zeroRange(f, off, n)
}

func zeroRange(w io.WriterAt, off, n int64) error {
	z := make([]byte, min(n, 64<<10))
	for n > 0 {
		k := min(n, int64(len(z)))
		if _, err := w.WriteAt(z[:k], off); err != nil {
			return err
		}
		off, n = off+k, n-k
	}
	return nil
}

// OpenFile opens a file as os.OpenFile does.
func (OS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// CreateUnnamed opens an O_TMPFILE inode in dir for reading and writing.
func (o OS) CreateUnnamed(dir string) (File, error) {
	if _, err := os.Stat(o.procFD()); err != nil {
		return nil, ErrUnsupported // no way to name it later
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
			return nil, ErrUnsupported
		}
		return nil, &fs.PathError{Op: "open O_TMPFILE", Path: dir, Err: err}
	}
	return osFile{os.NewFile(uintptr(fd), filepath.Join(dir, "(unnamed)"))}, nil
}

// LinkUnnamed names an inode from CreateUnnamed. linkat through
// /proc/self/fd needs no privilege (AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH).
func (o OS) LinkUnnamed(f File, path string) error {
	of, ok := f.(osFile)
	if !ok {
		return ErrUnsupported
	}
	err := unix.Linkat(unix.AT_FDCWD, o.procFD()+"/"+strconv.Itoa(int(of.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	if errors.Is(err, unix.ENOENT) {
		if _, serr := os.Stat(o.procFD()); serr != nil {
			return ErrUnsupported // /proc went away
		}
	}
	if err != nil {
		return &fs.PathError{Op: "link", Path: path, Err: err}
	}
	return nil
}

// Rename renames a file.
func (OS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

// Remove removes a file.
func (OS) Remove(name string) error { return os.Remove(name) }

// SyncDir fsyncs a directory.
func (OS) SyncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadDir lists the names in dir.
func (OS) ReadDir(dir string) ([]string, error) {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.Name()
	}
	return out, nil
}

// MkdirAll makes dir and its parents.
func (OS) MkdirAll(dir string, perm os.FileMode) error { return os.MkdirAll(dir, perm) }

// ReadFile reads a whole file.
func ReadFile(fsys FS, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// WriteFile writes data to path durably: into path+".tmp", fsynced, renamed
// over path, and the directory fsynced. A crash leaves the old file or the
// new one, never a part.
func WriteFile(fsys FS, path string, data []byte, perm os.FileMode) error {
	return WriteFileFrom(fsys, path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteFileFrom is WriteFile for content that write streams into the
// file. On any error nothing is left at path.
func WriteFileFrom(fsys FS, path string, perm os.FileMode, write func(io.Writer) error) error {
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		return err
	}
	err = write(f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return err
	}
	return fsys.SyncDir(filepath.Dir(path))
}
