package fsx

import (
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
)

// Fault is an in-memory file system for power-cut tests. It keeps, for every
// file, the bytes written and the bytes last fsynced, and, for every
// directory, its entries and the entries as of its last fsync. PowerCut
// throws away everything not synced, as a machine that loses power does
// (with the strictest reading of POSIX: an fsynced file whose new name was
// not made durable by a directory fsync is lost too). Directories made by
// MkdirAll are durable at once.
type Fault struct {
	mu       sync.Mutex
	dirs     map[string]*faultDir
	gen      int // bumped by PowerCut: handles opened before it are dead
	Syncs    int // file fsyncs so far
	DirSyncs int // directory fsyncs so far

	// NoUnnamed makes CreateUnnamed fail as on a file system without
	// O_TMPFILE; NoProc makes LinkUnnamed fail as on a system without
	// /proc (the inode was made, it cannot be named).
	NoUnnamed, NoProc bool

	// CutAt, when > 0, cuts the power just before the CutAt-th changing
	// operation (write, fsync, create, link, rename, remove) from now on:
	// that operation and every later one fail. Ops counts them.
	CutAt, Ops int
	cut        bool

	// Chaos, when set, makes a power cut keep each unsynced change by
	// chance instead of losing all: each changed directory entry keeps its
	// new state or its synced one, each file its written bytes or its
	// synced ones. That is what a journaling file system may do, and it
	// catches orders that rely on a change being lost (a removal made
	// before the commit that should precede it).
	Chaos *rand.Rand
}

// Clone returns a copy of f's files as they are now, synced and not, with
// no open handles and no cut pending.
func (f *Fault) Clone() *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := NewFault()
	c.NoUnnamed, c.NoProc = f.NoUnnamed, f.NoProc
	inos := map[*inode]*inode{}
	cp := func(ino *inode) *inode {
		if n, ok := inos[ino]; ok {
			return n
		}
		n := &inode{data: slices.Clone(ino.data), synced: slices.Clone(ino.synced)}
		inos[ino] = n
		return n
	}
	for path, d := range f.dirs {
		nd := &faultDir{entries: map[string]*inode{}, synced: map[string]*inode{}}
		for k, v := range d.entries {
			nd.entries[k] = cp(v)
		}
		for k, v := range d.synced {
			nd.synced[k] = cp(v)
		}
		c.dirs[path] = nd
	}
	return c
}

type faultDir struct {
	entries, synced map[string]*inode
}

type inode struct {
	data, synced []byte
}

// NewFault returns an empty Fault.
func NewFault() *Fault { return &Fault{dirs: map[string]*faultDir{}} }

// PowerCut forgets every write that was not synced and closes every open
// file (their handles fail from now on). Until Restore, every changing
// operation fails: the process that was running is dead, whatever its
// goroutines still try.
func (f *Fault) PowerCut() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = true
	f.powerCutLocked()
}

// Restore ends a cut: the machine is back on, with what survived.
func (f *Fault) Restore() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut, f.CutAt, f.Ops = false, 0, 0
}

// Cut reports whether a CutAt cut happened.
func (f *Fault) Cut() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut
}

// op counts a changing operation and reports the error it meets if the
// power is (now) off.
func (f *Fault) op() error {
	if f.cut {
		return errStale
	}
	f.Ops++
	if f.CutAt > 0 && f.Ops >= f.CutAt {
		f.cut = true
		f.powerCutLocked()
		return errStale
	}
	return nil
}

func (f *Fault) powerCutLocked() {
	f.gen++
	seen := map[*inode]bool{}
	for _, d := range f.dirs {
		if f.Chaos == nil {
			d.entries = maps(d.synced)
		} else {
			names := map[string]bool{}
			for k := range d.entries {
				names[k] = true
			}
			for k := range d.synced {
				names[k] = true
			}
			keys := make([]string, 0, len(names))
			for k := range names {
				keys = append(keys, k)
			}
			slices.Sort(keys) // the same seed, the same outcome
			next := map[string]*inode{}
			for _, k := range keys {
				cur, old := d.entries[k], d.synced[k]
				pick := old
				if cur != old && f.Chaos.IntN(2) == 0 {
					pick = cur
				}
				if pick != nil {
					next[k] = pick
				}
			}
			d.entries = next
			d.synced = maps(next)
		}
		for _, ino := range d.entries {
			if !seen[ino] {
				seen[ino] = true
				if f.Chaos == nil || f.Chaos.IntN(2) == 0 {
					ino.data = slices.Clone(ino.synced)
				}
				ino.synced = slices.Clone(ino.data)
			}
		}
	}
}

func maps(m map[string]*inode) map[string]*inode {
	out := make(map[string]*inode, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

var errStale = errors.New("fault fs: file handle from before the power cut")

func (f *Fault) lookup(path string) (*faultDir, string, error) {
	path = filepath.Clean(path)
	d := f.dirs[filepath.Dir(path)]
	if d == nil {
		return nil, "", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return d, filepath.Base(path), nil
}

// OpenFile opens or creates a file (O_CREATE, O_EXCL, O_TRUNC, O_APPEND are
// honoured).
func (f *Fault) OpenFile(name string, flag int, _ os.FileMode) (File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, base, err := f.lookup(name)
	if err != nil {
		return nil, err
	}
	if flag&(os.O_CREATE|os.O_TRUNC|os.O_WRONLY|os.O_RDWR) != 0 {
		if err := f.op(); err != nil {
			return nil, err
		}
	}
	ino := d.entries[base]
	switch {
	case ino == nil && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case ino != nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case ino == nil:
		ino = &inode{}
		d.entries[base] = ino
	}
	if flag&os.O_TRUNC != 0 {
		ino.data = nil
	}
	return &faultFile{fs: f, ino: ino, name: filepath.Clean(name), gen: f.gen, append: flag&os.O_APPEND != 0}, nil
}

// CreateUnnamed makes an inode with no name.
func (f *Fault) CreateUnnamed(dir string) (File, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NoUnnamed {
		return nil, ErrUnsupported
	}
	if err := f.op(); err != nil {
		return nil, err
	}
	if f.dirs[filepath.Clean(dir)] == nil {
		return nil, &fs.PathError{Op: "open", Path: dir, Err: fs.ErrNotExist}
	}
	return &faultFile{fs: f, ino: &inode{}, name: filepath.Join(dir, "(unnamed)"), gen: f.gen}, nil
}

// LinkUnnamed gives an unnamed inode a name (not durable until the
// directory is synced).
func (f *Fault) LinkUnnamed(file File, path string) error {
	ff, ok := file.(*faultFile)
	if !ok {
		return ErrUnsupported
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.NoProc {
		return ErrUnsupported
	}
	if err := f.op(); err != nil {
		return err
	}
	if ff.gen != f.gen {
		return errStale
	}
	d, base, err := f.lookup(path)
	if err != nil {
		return err
	}
	if d.entries[base] != nil {
		return &fs.PathError{Op: "link", Path: path, Err: fs.ErrExist}
	}
	d.entries[base] = ff.ino
	return nil
}

// Rename moves an entry (not durable until both directories are synced).
func (f *Fault) Rename(oldpath, newpath string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.op(); err != nil {
		return err
	}
	od, ob, err := f.lookup(oldpath)
	if err != nil {
		return err
	}
	nd, nb, err := f.lookup(newpath)
	if err != nil {
		return err
	}
	ino := od.entries[ob]
	if ino == nil {
		return &fs.PathError{Op: "rename", Path: oldpath, Err: fs.ErrNotExist}
	}
	delete(od.entries, ob)
	nd.entries[nb] = ino
	return nil
}

// Remove removes an entry.
func (f *Fault) Remove(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.op(); err != nil {
		return err
	}
	d, base, err := f.lookup(name)
	if err != nil {
		return err
	}
	if d.entries[base] == nil {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	delete(d.entries, base)
	return nil
}

// SyncDir makes dir's entries durable.
func (f *Fault) SyncDir(dir string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.op(); err != nil {
		return err
	}
	d := f.dirs[filepath.Clean(dir)]
	if d == nil {
		return &fs.PathError{Op: "fsync", Path: dir, Err: fs.ErrNotExist}
	}
	d.synced = maps(d.entries)
	f.DirSyncs++
	return nil
}

// ReadDir lists dir, sorted.
func (f *Fault) ReadDir(dir string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.dirs[filepath.Clean(dir)]
	if d == nil {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	var out []string
	for name := range d.entries {
		out = append(out, name)
	}
	slices.Sort(out)
	return out, nil
}

// MkdirAll makes dir and its parents, durably.
func (f *Fault) MkdirAll(dir string, _ os.FileMode) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if f.dirs[d] == nil {
			f.dirs[d] = &faultDir{entries: map[string]*inode{}, synced: map[string]*inode{}}
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// Bytes is the total size of the files that have a name.
func (f *Fault) Bytes() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	var n int64
	for _, d := range f.dirs {
		for _, ino := range d.entries {
			n += int64(len(ino.data))
		}
	}
	return n
}

type faultFile struct {
	fs     *Fault
	ino    *inode
	name   string
	gen    int
	pos    int64
	append bool
	closed bool
}

func (ff *faultFile) check() error {
	if ff.closed {
		return os.ErrClosed
	}
	if ff.gen != ff.fs.gen {
		return errStale
	}
	return nil
}

func (ff *faultFile) Name() string { return ff.name }

func (ff *faultFile) Read(p []byte) (int, error) {
	n, err := ff.ReadAt(p, ff.pos)
	ff.pos += int64(n)
	return n, err
}

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if err := ff.check(); err != nil {
		return 0, err
	}
	if off >= int64(len(ff.ino.data)) {
		return 0, io.EOF
	}
	n := copy(p, ff.ino.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (ff *faultFile) Write(p []byte) (int, error) {
	if ff.append {
		ff.fs.mu.Lock()
		ff.pos = int64(len(ff.ino.data))
		ff.fs.mu.Unlock()
	}
	n, err := ff.WriteAt(p, ff.pos)
	ff.pos += int64(n)
	return n, err
}

func (ff *faultFile) WriteAt(p []byte, off int64) (int, error) {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if err := ff.check(); err != nil {
		return 0, err
	}
	if err := ff.fs.op(); err != nil {
		return 0, err
	}
	if end := off + int64(len(p)); end > int64(len(ff.ino.data)) {
		ff.ino.data = append(ff.ino.data, make([]byte, end-int64(len(ff.ino.data)))...)
	}
	copy(ff.ino.data[off:], p)
	return len(p), nil
}

func (ff *faultFile) Seek(off int64, whence int) (int64, error) {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	switch whence {
	case io.SeekStart:
		ff.pos = off
	case io.SeekCurrent:
		ff.pos += off
	case io.SeekEnd:
		ff.pos = int64(len(ff.ino.data)) + off
	}
	return ff.pos, nil
}

func (ff *faultFile) Sync() error {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if err := ff.check(); err != nil {
		return err
	}
	if err := ff.fs.op(); err != nil {
		return err
	}
	ff.ino.synced = slices.Clone(ff.ino.data)
	ff.fs.Syncs++
	return nil
}

func (ff *faultFile) Size() (int64, error) {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if err := ff.check(); err != nil {
		return 0, err
	}
	return int64(len(ff.ino.data)), nil
}

func (ff *faultFile) Punch(off, n int64) error {
	ff.fs.mu.Lock()
	defer ff.fs.mu.Unlock()
	if err := ff.check(); err != nil {
		return err
	}
	if err := ff.fs.op(); err != nil {
		return err
	}
	end := min(off+n, int64(len(ff.ino.data)))
	for i := off; i < end; i++ {
		ff.ino.data[i] = 0
	}
	return nil
}

func (ff *faultFile) Close() error {
	if ff.closed {
		return os.ErrClosed
	}
	ff.closed = true
	return nil
}
