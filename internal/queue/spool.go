package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// Spool holds accepted messages, each sealed under the installation's key
// with its id as additional data, so a copied disk shows no mail and files
// cannot be swapped.
//
// A message of up to InlineMax sealed bytes is sealed in memory and appended
// to the active segment file (seg/); the segment is fsynced once per batch
// of commits, so concurrent sessions share the data flush as well as the
// database commit (group commit), and no file is created or removed per
// message. A segment is removed when the last message in it is done. A
// larger message streams to a file of its own in q/, written as an unnamed
// inode (O_TMPFILE) and linked into place after its fsync; where O_TMPFILE
// is not supported it is written in tmp/ and renamed. Either way the queue
// row, committed after the flush, is what makes a message exist: bytes no
// row points to are garbage, removed at start.
type Spool struct {
	dir       string
	key       []byte
	noTmpfile atomic.Bool // O_TMPFILE refused once: use tmp/ and rename

	mu     sync.Mutex
	segs   map[int64]*segment
	active *segment
	nextID int64
	segMax int64 // start a new segment past this size
}

// InlineMax is the largest sealed message kept in a segment.
const InlineMax = 256 << 10

// SegmentMax is the size at which a new segment is started.
const SegmentMax = 64 << 20

type segment struct {
	id        int64
	f         *os.File
	size      int64 // bytes allocated
	live      int64 // messages committed or being committed in it
	dirSynced atomic.Bool
}

// OpenSpool prepares the spool directories under dir.
func OpenSpool(dir string, key []byte) (*Spool, error) {
	if len(key) != seal.KeyLen {
		return nil, errors.New("spool: bad key length")
	}
	for _, d := range []string{"tmp", "q", "seg"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Spool{dir: dir, key: key, segs: map[int64]*segment{}, nextID: 1, segMax: SegmentMax}, nil
}

func (s *Spool) path(id string) string { return filepath.Join(s.dir, "q", id) }

func (s *Spool) segPath(id int64) string {
	return filepath.Join(s.dir, "seg", fmt.Sprintf("%012d", id))
}

// ErrStorage marks failures of local storage (disk full, I/O error): the
// SMTP layer answers them with 452 4.3.1.
var ErrStorage = errors.New("spool storage failure")

func storageErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %s: disk full: %v", ErrStorage, op, err)
	}
	return fmt.Errorf("%w: %s: %v", ErrStorage, op, err)
}

var bufPool = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, 64<<10)) }}

// SpoolWriter writes one message into the spool.
type SpoolWriter struct {
	s       *Spool
	id      string
	sw      *seal.Writer
	buf     *bytes.Buffer // sealed bytes while the message is small
	f       *os.File      // its own file once it is not
	unnamed bool
	werr    error
	done    bool
}

// Create starts a new message.
func (s *Spool) Create(id string) (*SpoolWriter, error) {
	w := &SpoolWriter{s: s, id: id, buf: bufPool.Get().(*bytes.Buffer)}
	w.buf.Reset()
	sw, err := seal.NewWriter(sinkFunc(w.sink), s.key, []byte(id))
	if err != nil {
		w.Abort()
		return nil, storageErr("seal", err)
	}
	w.sw = sw
	return w, nil
}

type sinkFunc func([]byte) (int, error)

func (f sinkFunc) Write(p []byte) (int, error) { return f(p) }

// sink takes sealed bytes: into memory, or into the message's own file once
// it outgrows InlineMax.
func (w *SpoolWriter) sink(p []byte) (int, error) {
	if w.f == nil && w.buf.Len()+len(p) > InlineMax {
		f, unnamed, err := w.s.createFile(w.id)
		if err != nil {
			return 0, storageErr("create", err)
		}
		w.f, w.unnamed = f, unnamed
		if _, err := f.Write(w.buf.Bytes()); err != nil {
			return 0, storageErr("write", err)
		}
		w.buf.Reset()
	}
	if w.f != nil {
		n, err := w.f.Write(p)
		if err != nil {
			return n, storageErr("write", err)
		}
		return n, nil
	}
	return w.buf.Write(p)
}

func (w *SpoolWriter) Write(p []byte) (int, error) {
	if w.werr != nil {
		return 0, w.werr
	}
	n, err := w.sw.Write(p)
	if err != nil {
		w.werr = err
		if !errors.Is(err, ErrStorage) {
			err = storageErr("write", err)
		}
		return n, err
	}
	return n, nil
}

// Size is the number of message bytes written.
func (w *SpoolWriter) Size() int64 { return w.sw.Size() }

// Durable is what must be flushed before a message's row is committed: a
// segment file or a directory. Key identifies it, so that a batch flushes
// each once.
type Durable struct {
	Key  string
	Sync func() error
}

// Commit seals the message and writes it to its place. The returned Durable
// must be synced before the message's row is committed.
func (w *SpoolWriter) Commit() (loc store.SpoolLoc, d Durable, err error) {
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if err := w.sw.Close(); err != nil {
		return loc, d, storageErr("write", err)
	}
	if w.f != nil {
		size, err := w.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return loc, d, storageErr("seek", err)
		}
		if err := w.f.Sync(); err != nil {
			return loc, d, storageErr("fsync", err)
		}
		if w.unnamed {
			err = linkTmpfile(w.f, w.s.path(w.id))
		} else {
			err = os.Rename(w.f.Name(), w.s.path(w.id))
		}
		w.f.Close()
		w.f = nil
		if err != nil {
			return loc, d, storageErr("link", err)
		}
		w.done = true
		w.release()
		dir := filepath.Join(w.s.dir, "q")
		return store.SpoolLoc{Len: size}, Durable{Key: "dir:" + dir, Sync: func() error { return syncDir(dir) }}, nil
	}
	seg, off, err := w.s.append(w.buf.Bytes())
	if err != nil {
		return loc, d, err
	}
	loc = store.SpoolLoc{Seg: seg.id, Off: off, Len: int64(w.buf.Len())}
	w.done = true
	w.release()
	segDir := filepath.Join(w.s.dir, "seg")
	return loc, Durable{Key: "seg:" + strconv.FormatInt(seg.id, 10), Sync: func() error {
		if err := seg.f.Sync(); err != nil {
			return storageErr("fsync", err)
		}
		if !seg.dirSynced.Load() {
			if err := syncDir(segDir); err != nil {
				return storageErr("fsync", err)
			}
			seg.dirSynced.Store(true)
		}
		return nil
	}}, nil
}

func (w *SpoolWriter) release() {
	if w.buf != nil {
		if w.buf.Cap() <= 2*InlineMax {
			bufPool.Put(w.buf)
		}
		w.buf = nil
	}
}

// Abort discards the message. Safe to call after a failed Commit.
func (w *SpoolWriter) Abort() {
	if w.done {
		return
	}
	w.done = true
	if w.sw != nil {
		w.sw.Close() // returns its buffers
	}
	if w.f != nil {
		w.f.Close()
		if !w.unnamed {
			os.Remove(w.f.Name())
		}
	}
	w.release()
}

// append reserves room in the active segment and writes data there.
func (s *Spool) append(data []byte) (*segment, int64, error) {
	s.mu.Lock()
	if s.active == nil || s.active.size+int64(len(data)) > s.segMax {
		if err := s.rotateLocked(); err != nil {
			s.mu.Unlock()
			return nil, 0, err
		}
	}
	seg := s.active
	off := seg.size
	seg.size += int64(len(data))
	seg.live++
	s.mu.Unlock()
	if _, err := seg.f.WriteAt(data, off); err != nil {
		s.release(seg.id)
		return nil, 0, storageErr("write", err)
	}
	return seg, off, nil
}

func (s *Spool) rotateLocked() error {
	id := s.nextID
	f, err := os.OpenFile(s.segPath(id), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return storageErr("create segment", err)
	}
	s.nextID++
	old := s.active
	s.active = &segment{id: id, f: f}
	s.segs[id] = s.active
	if old != nil && old.live == 0 {
		s.dropLocked(old)
	}
	return nil
}

func (s *Spool) dropLocked(seg *segment) {
	delete(s.segs, seg.id)
	seg.f.Close()
	os.Remove(s.segPath(seg.id))
}

// release drops one message's hold on segment id.
func (s *Spool) release(id int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seg := s.segs[id]
	if seg == nil {
		return
	}
	if seg.live--; seg.live <= 0 && seg != s.active {
		s.dropLocked(seg)
	}
}

// Message is an open spooled message.
type Message struct {
	*seal.ReaderAt
	f *os.File // own file, nil in a segment
}

// Close releases the message.
func (m *Message) Close() error {
	m.ReaderAt.Release()
	if m.f != nil {
		return m.f.Close()
	}
	return nil
}

// Open opens message id at loc for reading.
func (s *Spool) Open(id string, loc store.SpoolLoc) (*Message, error) {
	if loc.Seg != 0 {
		s.mu.Lock()
		seg := s.segs[loc.Seg]
		s.mu.Unlock()
		if seg == nil {
			return nil, fmt.Errorf("spool segment %d of message %s is missing", loc.Seg, id)
		}
		ra, err := seal.NewReaderAt(io.NewSectionReader(seg.f, loc.Off, loc.Len), loc.Len, s.key, []byte(id))
		if err != nil {
			return nil, fmt.Errorf("spooled message %s: %w", id, err)
		}
		return &Message{ReaderAt: ra}, nil
	}
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

// Remove lets go of message id at loc once it is done.
func (s *Spool) Remove(id string, loc store.SpoolLoc) error {
	if loc.Seg != 0 {
		s.release(loc.Seg)
		return nil
	}
	err := os.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Recover is run at start with the location of every queued message: it
// opens the segments they use, removes segments and files that no queued
// message needs (left by a crash between writing and committing, or after
// delivery), and empties tmp/. It returns how many files it removed.
func (s *Spool) Recover(live map[string]store.SpoolLoc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := map[int64]int64{}
	for _, loc := range live {
		if loc.Seg != 0 {
			refs[loc.Seg]++
		}
	}
	n := 0
	for _, d := range []string{"tmp"} {
		entries, err := os.ReadDir(filepath.Join(s.dir, d))
		if err != nil {
			return n, err
		}
		for _, e := range entries {
			if os.Remove(filepath.Join(s.dir, d, e.Name())) == nil {
				n++
			}
		}
	}
	entries, err := os.ReadDir(filepath.Join(s.dir, "q"))
	if err != nil {
		return n, err
	}
	for _, e := range entries {
		if loc, ok := live[e.Name()]; (!ok || loc.Seg != 0) && !strings.HasPrefix(e.Name(), ".") {
			if os.Remove(filepath.Join(s.dir, "q", e.Name())) == nil {
				n++
			}
		}
	}
	entries, err = os.ReadDir(filepath.Join(s.dir, "seg"))
	if err != nil {
		return n, err
	}
	for _, e := range entries {
		id, err := strconv.ParseInt(e.Name(), 10, 64)
		if err != nil {
			continue
		}
		if id >= s.nextID {
			s.nextID = id + 1
		}
		if refs[id] == 0 {
			if os.Remove(filepath.Join(s.dir, "seg", e.Name())) == nil {
				n++
			}
			continue
		}
		f, err := os.OpenFile(s.segPath(id), os.O_RDWR, 0)
		if err != nil {
			return n, err
		}
		st, err := f.Stat()
		if err != nil {
			f.Close()
			return n, err
		}
		seg := &segment{id: id, f: f, size: st.Size(), live: refs[id]}
		seg.dirSynced.Store(true)
		s.segs[id] = seg
	}
	// A segment that queued messages point to but that is gone (deleted by
	// hand, a lost disk) is not fatal here: delivering those messages fails
	// with a bounce that tells their senders to send again.
	return n, nil
}

// Live counts the messages held in segments.
func (s *Spool) Live() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for _, seg := range s.segs {
		n += seg.live
	}
	return n
}

// Close closes the open segments.
func (s *Spool) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		seg.f.Close()
	}
}

// syncDir fsyncs a directory, making entries created or renamed in it
// durable.
func syncDir(dir string) error {
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
