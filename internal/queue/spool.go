package queue

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
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

	"github.com/prometheus/client_golang/prometheus"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
	"sealpost/internal/store"
)

// Spool holds accepted messages, each sealed under a random key of its own
// (wrapped by the installation's key and kept in the message's row) with its
// id as additional data, so a copied disk shows no mail, files cannot be
// swapped, and a message whose row has lost its key is gone for good.
//
// A message of up to InlineMax sealed bytes is sealed in memory and appended
// to the active segment file (seg/); the segment is fsynced once per batch
// of commits, so concurrent sessions share the data flush as well as the
// database commit (group commit), and no file is created or removed per
// message. A larger message streams to a file of its own in q/, written as
// an unnamed inode (O_TMPFILE) and linked into place after its fsync; where
// O_TMPFILE or /proc is missing it is written in tmp/ and renamed. Either
// way the queue row, committed after the flush, is what makes a message
// exist: bytes no row points to are garbage, removed at start.
//
// The spool keeps an index of every message it holds, so that it frees
// space the moment a message is done (see Release) and knows how much of
// each segment is live; compaction (compact.go) moves the live
// records out of mostly dead segments.
type Spool struct {
	dir       string
	key       []byte
	wrap      cipher.AEAD // wraps the per-message keys
	fs        fsx.FS
	noTmpfile atomic.Bool // O_TMPFILE refused once: use tmp/ and rename

	mu     sync.Mutex
	segs   map[int64]*segment
	recs   map[string]*record
	active *segment
	nextID int64
	segMax int64         // start a new segment past this size
	files  int64         // bytes in q/
	wake   chan struct{} // a segment may need compacting
}

// InlineMax is the largest sealed message kept in a segment.
const InlineMax = 256 << 10

// SegmentMax is the size at which a new segment is started.
const SegmentMax = 64 << 20

type segment struct {
	id        int64
	f         fsx.File
	size      int64 // bytes allocated
	live      int64 // bytes of the records in it
	nrec      int   // records in it, committed or being committed
	pending   int   // records written but not yet committed
	readers   int   // open Messages reading from it
	dropped   bool  // unlinked; closed when the last reader is done
	dirSynced atomic.Bool
}

// record is one message the spool holds.
type record struct {
	seg     int64 // 0: a file of its own in q/
	off, n  int64
	pending bool // its row is not committed yet
}

// SpoolOptions are the spool's settings; the zero value is the default.
type SpoolOptions struct {
	FS         fsx.FS // fsx.OS{} when nil
	SegmentMax int64  // SegmentMax when 0
}

// OpenSpool prepares the spool directories under dir.
func OpenSpool(dir string, key []byte) (*Spool, error) {
	return OpenSpoolWith(dir, key, SpoolOptions{})
}

// OpenSpoolWith is OpenSpool with options.
func OpenSpoolWith(dir string, key []byte, o SpoolOptions) (*Spool, error) {
	if len(key) != seal.KeyLen {
		return nil, errors.New("spool: bad key length")
	}
	if o.FS == nil {
		o.FS = fsx.OS{}
	}
	if o.SegmentMax <= 0 {
		o.SegmentMax = SegmentMax
	}
	for _, d := range []string{"tmp", "q", "seg"} {
		if err := o.FS.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// A key of its own for wrapping (key separation: the installation key
	// itself only ever feeds HKDF).
	wk, err := hkdf.Key(sha256.New, key, nil, "sealpost spool message-key wrap", 32)
	if err != nil {
		return nil, err
	}
	b, err := aes.NewCipher(wk)
	if err != nil {
		return nil, err
	}
	wrap, _ := cipher.NewGCM(b)
	return &Spool{dir: dir, key: key, wrap: wrap, fs: o.FS, segs: map[int64]*segment{}, recs: map[string]*record{},
		nextID: 1, segMax: o.SegmentMax, wake: make(chan struct{}, 1)}, nil
}

func (s *Spool) path(id string) string { return filepath.Join(s.dir, "q", id) }

func (s *Spool) segPath(id int64) string {
	return filepath.Join(s.dir, "seg", fmt.Sprintf("%012d", id))
}

func wrapAAD(id string) []byte { return []byte("spool-key\x00" + id) }

// wrapKey seals a message's data key: nonce | AES-GCM(key).
func (s *Spool) wrapKey(id string, dk []byte) []byte {
	nonce := make([]byte, s.wrap.NonceSize(), s.wrap.NonceSize()+len(dk)+s.wrap.Overhead())
	rand.Read(nonce)
	return s.wrap.Seal(nonce, nonce, dk, wrapAAD(id))
}

// messageKey is the key message id is sealed with: its own, unwrapped, or
// for messages spooled before per-message keys, the installation key.
func (s *Spool) messageKey(id string, loc store.SpoolLoc) ([]byte, error) {
	if len(loc.Key) == 0 {
		return s.key, nil
	}
	ns := s.wrap.NonceSize()
	if len(loc.Key) < ns {
		return nil, fmt.Errorf("spooled message %s: its key is damaged", id)
	}
	dk, err := s.wrap.Open(nil, loc.Key[:ns], loc.Key[ns:], wrapAAD(id))
	if err != nil {
		return nil, fmt.Errorf("spooled message %s: its key does not unwrap: %w", id, err)
	}
	return dk, nil
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
	wrapped []byte // the message's key, wrapped
	sw      *seal.Writer
	buf     *bytes.Buffer // sealed bytes while the message is small
	f       fsx.File      // its own file once it is not
	unnamed bool
	werr    error
	done    bool
}

// Create starts a new message.
func (s *Spool) Create(id string) (*SpoolWriter, error) {
	w := &SpoolWriter{s: s, id: id, buf: bufPool.Get().(*bytes.Buffer)}
	w.buf.Reset()
	dk := make([]byte, seal.KeyLen)
	rand.Read(dk)
	w.wrapped = s.wrapKey(id, dk)
	sw, err := seal.NewWriter(sinkFunc(w.sink), dk, []byte(id))
	clear(dk)
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

// createFile makes the file for message id: an unnamed O_TMPFILE inode in
// q/ where the file system and /proc allow, else a named file in tmp/.
func (s *Spool) createFile(id string) (fsx.File, bool, error) {
	if !s.noTmpfile.Load() {
		f, err := s.fs.CreateUnnamed(filepath.Join(s.dir, "q"))
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fsx.ErrUnsupported) {
			return nil, false, err
		}
		s.noTmpfile.Store(true)
	}
	f, err := s.fs.OpenFile(filepath.Join(s.dir, "tmp", id), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	return f, false, err
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
// must be synced before the message's row is committed; then Settle (or,
// if the row is not committed, Release) must be called.
func (w *SpoolWriter) Commit() (loc store.SpoolLoc, d Durable, err error) {
	defer func() {
		if err != nil {
			w.Abort()
		}
	}()
	if err := w.sw.Close(); err != nil {
		return loc, d, storageErr("write", err)
	}
	s := w.s
	if w.f != nil {
		size, err := w.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return loc, d, storageErr("seek", err)
		}
		if err := w.f.Sync(); err != nil {
			return loc, d, storageErr("fsync", err)
		}
		if err := s.name(w); err != nil {
			return loc, d, storageErr("link", err)
		}
		w.done = true
		w.release()
		s.mu.Lock()
		s.recs[w.id] = &record{n: size, pending: true}
		s.files += size
		s.mu.Unlock()
		dir := filepath.Join(s.dir, "q")
		return store.SpoolLoc{Len: size, Key: w.wrapped}, Durable{Key: "dir:" + dir, Sync: func() error {
			if err := s.fs.SyncDir(dir); err != nil {
				return storageErr("fsync", err)
			}
			return nil
		}}, nil
	}
	seg, off, err := s.append(w.id, w.buf.Bytes(), true)
	if err != nil {
		return loc, d, err
	}
	loc = store.SpoolLoc{Seg: seg.id, Off: off, Len: int64(w.buf.Len()), Key: w.wrapped}
	w.done = true
	w.release()
	return loc, s.segDurable(seg), nil
}

// name links the message's complete, fsynced file into q/. Where the
// unnamed inode cannot be linked (no /proc), its bytes are copied to a
// named file in tmp/, fsynced and renamed instead: the message is kept,
// not refused.
func (s *Spool) name(w *SpoolWriter) error {
	dst := s.path(w.id)
	if !w.unnamed {
		err := s.fs.Rename(w.f.Name(), dst)
		w.f.Close()
		w.f = nil
		return err
	}
	err := s.fs.LinkUnnamed(w.f, dst)
	if errors.Is(err, fsx.ErrUnsupported) {
		s.noTmpfile.Store(true)
		err = s.copyToNamed(w.f, w.id, dst)
	}
	w.f.Close()
	w.f = nil
	return err
}

func (s *Spool) copyToNamed(src fsx.File, id, dst string) error {
	tmp := filepath.Join(s.dir, "tmp", id)
	f, err := s.fs.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	size, err := src.Size()
	if err == nil {
		_, err = io.Copy(f, io.NewSectionReader(src, 0, size))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.fs.Rename(tmp, dst)
	}
	if err != nil {
		s.fs.Remove(tmp)
	}
	return err
}

// segDurable is what makes records appended to seg durable: the segment's
// data, and its name the first time.
func (s *Spool) segDurable(seg *segment) Durable {
	segDir := filepath.Join(s.dir, "seg")
	return Durable{Key: "seg:" + strconv.FormatInt(seg.id, 10), Sync: func() error {
		if err := seg.f.Sync(); err != nil {
			return storageErr("fsync", err)
		}
		if !seg.dirSynced.Load() {
			if err := s.fs.SyncDir(segDir); err != nil {
				return storageErr("fsync", err)
			}
			seg.dirSynced.Store(true)
		}
		return nil
	}}
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
			w.s.fs.Remove(w.f.Name())
		}
	}
	w.release()
}

// append reserves room in the active segment and writes data there. With
// id, the record is indexed (pending until Settle).
func (s *Spool) append(id string, data []byte, pending bool) (*segment, int64, error) {
	n := int64(len(data))
	s.mu.Lock()
	if s.active == nil || s.active.size+n > s.segMax {
		if err := s.rotateLocked(); err != nil {
			s.mu.Unlock()
			return nil, 0, err
		}
	}
	seg := s.active
	off := seg.size
	seg.size += n
	seg.live += n
	seg.nrec++
	if id != "" {
		s.recs[id] = &record{seg: seg.id, off: off, n: n, pending: pending}
		if pending {
			seg.pending++
		}
	}
	s.mu.Unlock()
	if _, err := seg.f.WriteAt(data, off); err != nil {
		if id != "" {
			s.Release(id)
		} else {
			s.dropBytes(seg.id, off, n)
		}
		return nil, 0, storageErr("write", err)
	}
	return seg, off, nil
}

func (s *Spool) rotateLocked() error {
	id := s.nextID
	f, err := s.fs.OpenFile(s.segPath(id), os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return storageErr("create segment", err)
	}
	s.nextID++
	old := s.active
	s.active = &segment{id: id, f: f}
	s.segs[id] = s.active
	if old != nil {
		if old.nrec == 0 {
			s.dropLocked(old)
		} else {
			s.kickLocked()
		}
	}
	return nil
}

// dropLocked unlinks a segment; its file is closed once no reader has it.
func (s *Spool) dropLocked(seg *segment) {
	delete(s.segs, seg.id)
	seg.dropped = true
	s.fs.Remove(s.segPath(seg.id))
	if seg.readers == 0 {
		seg.f.Close()
	}
}

// dropBytes lets go of n bytes at off in segment id that no record owns
// (a copy compaction did not keep).
func (s *Spool) dropBytes(id, off, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropBytesLocked(id, off, n, true)
}

// dropBytesLocked lets go of n bytes at off in segment id. With erase, they
// are punched out: a finished message's bytes are gone at once. A record
// that compaction moved is not (a reader may still be on it; the message
// lives on in its copy).
func (s *Spool) dropBytesLocked(id, off, n int64, erase bool) {
	seg := s.segs[id]
	if seg == nil {
		return
	}
	seg.live -= n
	seg.nrec--
	// Erase the sealed bytes now (and free their blocks where the file
	// system can): the data is gone even before the segment is.
	if erase {
		seg.f.Punch(off, n)
	}
	if seg.nrec <= 0 && seg != s.active {
		s.dropLocked(seg)
	} else if seg != s.active {
		s.kickLocked()
	}
}

// Settle marks message id's row as committed.
func (s *Spool) Settle(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.recs[id]; r != nil && r.pending {
		r.pending = false
		if seg := s.segs[r.seg]; r.seg != 0 && seg != nil {
			seg.pending--
		}
	}
}

// Release frees message id's bytes at once: its segment record is erased
// (and the segment removed if nothing else lives in it) or its file
// removed. Releasing a message the spool does not hold is a no-op, but for
// a file of its own that a previous run left, which is removed.
func (s *Spool) Release(id string) error {
	s.mu.Lock()
	r := s.recs[id]
	if r == nil {
		s.mu.Unlock()
		err := s.fs.Remove(s.path(id))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	delete(s.recs, id)
	if r.seg != 0 {
		if seg := s.segs[r.seg]; seg != nil && r.pending {
			seg.pending--
		}
		s.dropBytesLocked(r.seg, r.off, r.n, true)
		s.mu.Unlock()
		return nil
	}
	s.files -= r.n
	s.mu.Unlock()
	err := s.fs.Remove(s.path(id))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Remove lets go of message id once it is done (Release; loc is not needed
// since the spool knows where its messages are, and may have moved them).
func (s *Spool) Remove(id string, _ store.SpoolLoc) error { return s.Release(id) }

// Message is an open spooled message.
type Message struct {
	*seal.ReaderAt
	f   fsx.File // own file, nil in a segment
	s   *Spool
	seg *segment
}

// Close releases the message.
func (m *Message) Close() error {
	m.ReaderAt.Release()
	if m.seg != nil {
		m.s.unread(m.seg)
	}
	if m.f != nil {
		return m.f.Close()
	}
	return nil
}

// Open opens message id for reading. loc comes from its row: its key, and
// where it is if the spool does not index it.
func (s *Spool) Open(id string, loc store.SpoolLoc) (*Message, error) {
	key, err := s.messageKey(id, loc)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if r := s.recs[id]; r != nil {
		loc.Seg, loc.Off, loc.Len = r.seg, r.off, r.n
	}
	if loc.Seg != 0 {
		seg := s.segs[loc.Seg]
		if seg == nil {
			s.mu.Unlock()
			return nil, fmt.Errorf("spool segment %d of message %s is missing", loc.Seg, id)
		}
		seg.readers++
		s.mu.Unlock()
		ra, err := seal.NewReaderAt(io.NewSectionReader(seg.f, loc.Off, loc.Len), loc.Len, key, []byte(id))
		if err != nil {
			s.unread(seg)
			return nil, fmt.Errorf("spooled message %s: %w", id, err)
		}
		return &Message{ReaderAt: ra, s: s, seg: seg}, nil
	}
	s.mu.Unlock()
	f, err := s.fs.OpenFile(s.path(id), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, err
	}
	ra, err := seal.NewReaderAt(f, size, key, []byte(id))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("spool file %s: %w", id, err)
	}
	return &Message{ReaderAt: ra, f: f}, nil
}

// Recover is run at start with the location of every queued message: it
// indexes them, opens the segments they use, removes segments and files
// that no queued message needs (left by a crash between writing and
// committing, or after delivery), and empties tmp/. It returns how many
// files it removed.
func (s *Spool) Recover(live map[string]store.SpoolLoc) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	refs := map[int64][]string{}
	for id, loc := range live {
		if loc.Seg != 0 {
			refs[loc.Seg] = append(refs[loc.Seg], id)
		}
	}
	n := 0
	tmp := filepath.Join(s.dir, "tmp")
	names, err := s.fs.ReadDir(tmp)
	if err != nil {
		return n, err
	}
	for _, name := range names {
		if s.fs.Remove(filepath.Join(tmp, name)) == nil {
			n++
		}
	}
	q := filepath.Join(s.dir, "q")
	if names, err = s.fs.ReadDir(q); err != nil {
		return n, err
	}
	for _, name := range names {
		if strings.HasPrefix(name, ".") {
			continue
		}
		if loc, ok := live[name]; ok && loc.Seg == 0 {
			f, err := s.fs.OpenFile(filepath.Join(q, name), os.O_RDONLY, 0)
			if err != nil {
				return n, err
			}
			size, err := f.Size()
			f.Close()
			if err != nil {
				return n, err
			}
			s.recs[name] = &record{n: size}
			s.files += size
			continue
		}
		if s.fs.Remove(filepath.Join(q, name)) == nil {
			n++
		}
	}
	seg := filepath.Join(s.dir, "seg")
	if names, err = s.fs.ReadDir(seg); err != nil {
		return n, err
	}
	for _, name := range names {
		id, err := strconv.ParseInt(name, 10, 64)
		if err != nil {
			continue
		}
		if id >= s.nextID {
			s.nextID = id + 1
		}
		if len(refs[id]) == 0 {
			if s.fs.Remove(filepath.Join(seg, name)) == nil {
				n++
			}
			continue
		}
		f, err := s.fs.OpenFile(s.segPath(id), os.O_RDWR, 0)
		if err != nil {
			return n, err
		}
		size, err := f.Size()
		if err != nil {
			f.Close()
			return n, err
		}
		sg := &segment{id: id, f: f, size: size}
		sg.dirSynced.Store(true)
		for _, mid := range refs[id] {
			loc := live[mid]
			s.recs[mid] = &record{seg: id, off: loc.Off, n: loc.Len}
			sg.live += loc.Len
			sg.nrec++
		}
		s.segs[id] = sg
	}
	// A segment that queued messages point to but that is gone (deleted by
	// hand, a lost disk) is not fatal here: delivering those messages fails
	// with a bounce that tells their senders to send again.
	s.kickLocked() // compaction at start
	return n, nil
}

// Live counts the messages the spool holds.
func (s *Spool) Live() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return int64(len(s.recs))
}

// Usage is the spool's size: the sealed bytes of the messages it holds, and
// the bytes of its files (segments, live and dead records, and files of
// their own). Dead records erased by punching may take no blocks, so the
// disk holds at most total.
func (s *Spool) Usage() (live, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usageLocked()
}

func (s *Spool) usageLocked() (live, total int64) {
	live, total = s.files, s.files
	for _, seg := range s.segs {
		live += seg.live
		total += seg.size
	}
	return live, total
}

// gauges are the spool's usage as Prometheus gauges, read at each scrape.
func (s *Spool) gauges() []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sealpost_spool_bytes_live",
			Help: "Sealed bytes of the messages in the spool (not yet delivered, bounced, expired or deleted).",
		}, func() float64 { live, _ := s.Usage(); return float64(live) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sealpost_spool_bytes_total",
			Help: "Bytes of the spool's files, live and dead; at most live + 3 x the segment size.",
		}, func() float64 { _, total := s.Usage(); return float64(total) }),
	}
}

func (s *Spool) kickLocked() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Close closes the open segments.
func (s *Spool) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, seg := range s.segs {
		seg.f.Close()
	}
}
