package blob

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"sealpost/internal/fsx"
)

// File keeps blobs as files under Root: Ref "ab/abcdef" is Root/ab/abcdef.
// A Put writes an unnamed file (O_TMPFILE), fsyncs it and links it into
// place, which fails if the name exists, then fsyncs the directory: a blob
// is there whole or not at all after a power cut, and never replaces
// another. Where unnamed files are not available it writes a named
// temporary file (".tmp-…", never a valid Ref) and renames it, after
// checking under a lock that the name is free: that check holds within one
// process, which the data directory's lock makes the only writer.
type File struct {
	fs   fsx.FS
	root string

	mu   sync.Mutex      // the fallback's check-and-rename
	dirs map[string]bool // directories known to exist durably
	dmu  sync.Mutex
}

// NewFile returns the file backend over root (made on first Put).
func NewFile(fsys fsx.FS, root string) *File {
	return &File{fs: fsys, root: filepath.Clean(root), dirs: map[string]bool{}}
}

func (s *File) path(ref Ref) (string, error) {
	if err := ref.Check(); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(string(ref))), nil
}

// mkdir makes dir and makes its entry durable in each parent it created,
// once per directory for the life of s.
func (s *File) mkdir(dir string) error {
	s.dmu.Lock()
	defer s.dmu.Unlock()
	if s.dirs[dir] {
		return nil
	}
	if err := s.fs.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if err := s.fs.SyncDir(filepath.Dir(d)); err != nil {
			return err
		}
		if d == s.root || filepath.Dir(d) == d || !strings.HasPrefix(d, s.root) {
			break
		}
	}
	s.dirs[dir] = true
	return nil
}

// Put implements Store.
func (s *File) Put(ctx context.Context, ref Ref, r io.Reader, size int64) error {
	path, err := s.path(ref)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := s.mkdir(dir); err != nil {
		return err
	}
	f, err := s.fs.CreateUnnamed(dir)
	switch {
	case errors.Is(err, fsx.ErrUnsupported):
		return s.putNamed(ctx, dir, path, r, size)
	case err != nil:
		return err
	}
	defer f.Close()
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil && size >= 0 && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Sync()
	}
	if err != nil {
		return err
	}
	err = s.fs.LinkUnnamed(f, path)
	switch {
	case errors.Is(err, fs.ErrExist):
		return ErrExists
	case errors.Is(err, fsx.ErrUnsupported):
		// /proc went away after the file was made: name it the other way.
		return s.putNamed(ctx, dir, path, io.NewSectionReader(f, 0, n), n)
	case err != nil:
		return err
	}
	return s.fs.SyncDir(dir)
}

func (s *File) putNamed(ctx context.Context, dir, path string, r io.Reader, size int64) error {
	b := make([]byte, 8)
	rand.Read(b)
	tmp := filepath.Join(dir, ".tmp-"+hex.EncodeToString(b))
	f, err := s.fs.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil && size >= 0 && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		s.mu.Lock()
		if g, oerr := s.fs.OpenFile(path, os.O_RDONLY, 0); oerr == nil {
			g.Close()
			err = ErrExists
		} else {
			err = s.fs.Rename(tmp, path)
		}
		s.mu.Unlock()
	}
	if err != nil {
		s.fs.Remove(tmp)
		return err
	}
	return s.fs.SyncDir(dir)
}

func (s *File) open(ref Ref) (fsx.File, int64, error) {
	path, err := s.path(ref)
	if err != nil {
		return nil, 0, err
	}
	f, err := s.fs.OpenFile(path, os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, size, nil
}

// Get implements Store.
func (s *File) Get(ctx context.Context, ref Ref, off, n int64) (io.ReadCloser, error) {
	f, size, err := s.open(ref)
	if err != nil {
		return nil, err
	}
	if off < 0 || off >= size && !(off == 0 && n < 0) {
		f.Close()
		return nil, ErrRange
	}
	if n < 0 || off+n > size {
		n = size - off
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, off, n), f}, nil
}

// Stat implements Store.
func (s *File) Stat(ctx context.Context, ref Ref) (Info, error) {
	f, size, err := s.open(ref)
	if err != nil {
		return Info{}, err
	}
	f.Close()
	return Info{Ref: ref, Size: size}, nil
}

// Open implements Opener: the open file itself.
func (s *File) Open(ctx context.Context, ref Ref) (ReaderAt, error) {
	f, size, err := s.open(ref)
	if err != nil {
		return nil, err
	}
	return fileReaderAt{f, size}, nil
}

type fileReaderAt struct {
	fsx.File
	size int64
}

func (f fileReaderAt) Size() int64 { return f.size }

// Delete implements Store.
func (s *File) Delete(ctx context.Context, ref Ref) error {
	path, err := s.path(ref)
	if err != nil {
		return err
	}
	if err := s.fs.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// List implements Store. It reads only the directories that can hold refs
// with the prefix.
func (s *File) List(ctx context.Context, prefix string, f func(Info) error) error {
	var out []Info
	var walk func(rel string) error
	walk = func(rel string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		names, err := s.fs.ReadDir(filepath.Join(s.root, filepath.FromSlash(rel)))
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, name := range names {
			if strings.HasPrefix(name, ".") {
				continue // temporary files
			}
			child := name
			if rel != "" {
				child = rel + "/" + name
			}
			if !strings.HasPrefix(child, prefix) && !strings.HasPrefix(prefix, child+"/") {
				continue
			}
			full := filepath.Join(s.root, filepath.FromSlash(child))
			if _, derr := s.fs.ReadDir(full); derr == nil {
				if err := walk(child); err != nil {
					return err
				}
				continue
			}
			if !strings.HasPrefix(child, prefix) {
				continue
			}
			info, err := s.Stat(ctx, Ref(child))
			if errors.Is(err, ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return err
			}
			out = append(out, info)
		}
		return nil
	}
	if err := walk(""); err != nil {
		return err
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(string(a.Ref), string(b.Ref)) })
	for _, info := range out {
		if err := f(info); err != nil {
			return err
		}
	}
	return nil
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
