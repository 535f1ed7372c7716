// Package blob keeps message bytes: sealed portal messages, and in cluster
// mode the spool, in a file tree (the embedded default) or an S3-compatible
// bucket. Metadata refers to a blob by its Ref only; how a backend lays it
// out is its own business.
//
// Blobs are written once: Put refuses a Ref that exists (a conditional
// create), so a retried write can never replace bytes that metadata already
// points to. Blobs hold ciphertext (package seal): a backend sees no
// message in the clear.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Ref names a blob: segments of [A-Za-z0-9_.=-] joined by "/", none empty
// or starting with ".", at most 512 bytes ("portal/ab/abcdef.1").
type Ref string

// Info describes a stored blob.
type Info struct {
	Ref  Ref
	Size int64
}

// Store is a blob backend. Every method is safe for concurrent use.
type Store interface {
	// Put stores the bytes of r under ref and returns once they are
	// durable (fsynced; acknowledged by the bucket). size is the length
	// of r, or -1 when unknown. ErrExists when ref is there already: the
	// blob that is there is left as it was. On any error no blob is left
	// at ref by this call.
	Put(ctx context.Context, ref Ref, r io.Reader, size int64) error
	// Get reads n bytes from offset off (n < 0: to the end; a range past
	// the end is cut short). ErrNotFound when there is no such blob;
	// ErrRange when off is at or past the end (except off 0, n < 0 on an
	// empty blob, which reads nothing).
	Get(ctx context.Context, ref Ref, off, n int64) (io.ReadCloser, error)
	// Stat describes a blob, or ErrNotFound.
	Stat(ctx context.Context, ref Ref) (Info, error)
	// Delete removes a blob; a missing one is not an error (deletion is
	// retried after crashes and must converge).
	Delete(ctx context.Context, ref Ref) error
	// List calls f for every blob whose Ref starts with prefix (a plain
	// string prefix, not only whole segments), in Ref order, and stops at
	// f's first error, which it returns.
	List(ctx context.Context, prefix string, f func(Info) error) error
}

var (
	ErrExists   = errors.New("blob: exists")
	ErrNotFound = errors.New("blob: not found")
	ErrRange    = errors.New("blob: offset past the end")
)

// Check says why ref is not a valid Ref, or nil.
func (ref Ref) Check() error {
	s := string(ref)
	if s == "" || len(s) > 512 {
		return fmt.Errorf("blob: bad ref %q: empty or longer than 512 bytes", s)
	}
	for _, seg := range strings.Split(s, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("blob: bad ref %q: empty segment or one starting with '.'", s)
		}
		for _, c := range seg {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '=' || c == '-') {
				return fmt.Errorf("blob: bad ref %q: character %q", s, c)
			}
		}
	}
	return nil
}

// Opener is implemented by backends that can hand out random access to a
// blob more cheaply than by ranged Gets (the file backend: the open file).
type Opener interface {
	Open(ctx context.Context, ref Ref) (ReaderAt, error)
}

// ReaderAt is random access to one blob.
type ReaderAt interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// Open gives random access to a blob of s: the backend's own where it has
// one, else ReadAt by ranged Gets (one request per call: wrap it in a
// buffer for small reads).
func Open(ctx context.Context, s Store, ref Ref) (ReaderAt, error) {
	if o, ok := s.(Opener); ok {
		return o.Open(ctx, ref)
	}
	info, err := s.Stat(ctx, ref)
	if err != nil {
		return nil, err
	}
	return &rangeReader{ctx: ctx, s: s, ref: ref, size: info.Size}, nil
}

type rangeReader struct {
	ctx  context.Context
	s    Store
	ref  Ref
	size int64
}

func (r *rangeReader) Size() int64  { return r.size }
func (r *rangeReader) Close() error { return nil }

func (r *rangeReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := int64(len(p))
	if off+n > r.size {
		n = r.size - off
	}
	rc, err := r.s.Get(r.ctx, r.ref, off, n)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	got, err := io.ReadFull(rc, p[:n])
	if err == nil && int64(got) < int64(len(p)) {
		err = io.EOF
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		err = fmt.Errorf("blob %s: shorter than its size %d", r.ref, r.size)
	}
	return got, err
}
