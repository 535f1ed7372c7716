package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"sealpost/internal/fsx"
	"sealpost/internal/store"
)

// Interval is how often the gateway signs new events; Grace is how old an
// event may be and still not be covered by a checkpoint (a running
// gateway's fresh tail).
const (
	Interval = time.Minute
	Grace    = 2 * Interval
)

func signedBytes(c *store.AuditCheckpoint) []byte {
	b := make([]byte, 0, 64+3*32+32)
	b = append(b, "sealpost audit checkpoint v2\x00"...)
	for _, v := range []int64{c.N, c.Seq, c.Count, c.At.UnixMilli()} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	for _, f := range [][]byte{c.Hash, c.MAC, c.Prev} {
		b = binary.BigEndian.AppendUint64(b, uint64(len(f)))
		b = append(b, f...)
	}
	return b
}

// CheckpointDigest is what the next checkpoint carries as Prev.
func CheckpointDigest(c *store.AuditCheckpoint) []byte {
	h := sha256.Sum256(signedBytes(c))
	return h[:]
}

// VerifyCheckpoint checks a checkpoint's signature.
func VerifyCheckpoint(pub ed25519.PublicKey, c *store.AuditCheckpoint) bool {
	return len(c.Sig) == ed25519.SignatureSize && ed25519.Verify(pub, signedBytes(c), c.Sig)
}

func sameCheckpoint(a, b *store.AuditCheckpoint) bool {
	return a.N == b.N && a.Seq == b.Seq && a.Count == b.Count && a.At.UnixMilli() == b.At.UnixMilli() &&
		bytes.Equal(a.Hash, b.Hash) && hmac.Equal(a.MAC, b.MAC) && bytes.Equal(a.Prev, b.Prev) && hmac.Equal(a.Sig, b.Sig)
}

// CheckpointJSON is a checkpoint as the witness file and bundles write it.
type CheckpointJSON struct {
	N     int64  `json:"checkpoint"`
	Seq   int64  `json:"seq"`
	Count int64  `json:"count"`
	At    string `json:"at"`
	Hash  string `json:"hash"`
	MAC   string `json:"mac"`
	Prev  string `json:"prev"`
	Sig   string `json:"sig"`
}

// ToJSON writes c for the witness or a bundle.
func ToJSON(c *store.AuditCheckpoint) CheckpointJSON {
	return CheckpointJSON{N: c.N, Seq: c.Seq, Count: c.Count, At: c.At.UTC().Format("2006-01-02T15:04:05.000Z"),
		Hash: hex.EncodeToString(c.Hash), MAC: hex.EncodeToString(c.MAC), Prev: hex.EncodeToString(c.Prev), Sig: base64.StdEncoding.EncodeToString(c.Sig)}
}

// FromJSON reads a checkpoint written by ToJSON.
func FromJSON(j CheckpointJSON) (*store.AuditCheckpoint, error) {
	c := &store.AuditCheckpoint{N: j.N, Seq: j.Seq, Count: j.Count}
	at, err := time.Parse(time.RFC3339Nano, j.At)
	if err != nil {
		return nil, fmt.Errorf("time %q: %v", j.At, err)
	}
	c.At = time.UnixMilli(at.UnixMilli())
	for _, f := range []struct {
		dst *[]byte
		v   string
	}{{&c.Hash, j.Hash}, {&c.MAC, j.MAC}, {&c.Prev, j.Prev}} {
		if *f.dst, err = hex.DecodeString(f.v); err != nil {
			return nil, fmt.Errorf("%q is not hex", f.v)
		}
		if len(*f.dst) == 0 {
			*f.dst = nil
		}
	}
	if c.Sig, err = base64.StdEncoding.DecodeString(j.Sig); err != nil {
		return nil, fmt.Errorf("signature is not base64")
	}
	return c, nil
}

// Witness keeps every checkpoint outside the database: one line each in a
// file (fsynced before the checkpoint is stored) and in the system log.
type Witness struct {
	Path   string
	fs     fsx.FS    // nil: the real file system (tests cut the power on a fake one)
	syslog io.Writer // nil: no system log socket
}

// OpenWitness opens the witness file at path and, if there is one, the local
// system log (syslog or journald's syslog socket). A machine without a
// system log socket is not an error: the file is the witness; that is
// logged once.
func OpenWitness(path string, log *slog.Logger) *Witness {
	w := &Witness{Path: path}
	if s, err := syslog.New(syslog.LOG_INFO|syslog.LOG_AUTHPRIV, "sealpost"); err == nil {
		w.syslog = s
	} else if log != nil {
		log.Info("no system log socket: audit checkpoints are witnessed in the witness file only", "witness_file", path, "err", err)
	}
	return w
}

func (w *Witness) files() fsx.FS {
	if w.fs == nil {
		return fsx.OS{}
	}
	return w.fs
}

// Close closes the system log connection.
func (w *Witness) Close() {
	if c, ok := w.syslog.(io.Closer); ok {
		c.Close()
	}
}

// Append writes c to the witness file, fsynced (and the directory too when
// the file is new), and to the system log.
func (w *Witness) Append(c *store.AuditCheckpoint) error {
	line, err := json.Marshal(ToJSON(c))
	if err != nil {
		return err
	}
	fsys := w.files()
	created := false
	f, err := fsys.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND, 0o600)
	if errors.Is(err, os.ErrNotExist) {
		created = true
		f, err = fsys.OpenFile(w.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	}
	if err != nil {
		return fmt.Errorf("audit witness file: %w", err)
	}
	_, err = f.Write(append(line, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && created {
		// A new file: its name must be durable too.
		err = fsys.SyncDir(filepath.Dir(w.Path))
	}
	if err != nil {
		return fmt.Errorf("audit witness file %s: %w", w.Path, err)
	}
	if w.syslog != nil {
		// The system log is a second copy; a failure there does not stop
		// the checkpoint, the file has it.
		w.syslog.Write(append([]byte("audit checkpoint "), line...))
	}
	return nil
}

// ReadWitness reads every checkpoint of a witness file, in file order. A
// missing file gives os.ErrNotExist; a line that does not parse is an
// error naming it.
func ReadWitness(path string) ([]*store.AuditCheckpoint, error) {
	return readWitness(fsx.OS{}, path)
}

func readFile(fsys fsx.FS, path string, tail int64) ([]byte, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	off := int64(0)
	if tail > 0 {
		off = max(size-tail, 0)
	}
	b := make([]byte, size-off)
	if _, err := f.ReadAt(b, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

func readWitness(fsys fsx.FS, path string) ([]*store.AuditCheckpoint, error) {
	b, err := readFile(fsys, path, 0)
	if err != nil {
		return nil, err
	}
	var out []*store.AuditCheckpoint
	for i, line := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var j CheckpointJSON
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			return nil, fmt.Errorf("witness file %s line %d: not a checkpoint: %v", path, i+1, err)
		}
		c, err := FromJSON(j)
		if err != nil {
			return nil, fmt.Errorf("witness file %s line %d: %v", path, i+1, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// last is the witness file's newest checkpoint (nil if none or unreadable).
func (w *Witness) last() *store.AuditCheckpoint {
	b, err := readFile(w.files(), w.Path, 8192)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var j CheckpointJSON
	if json.Unmarshal([]byte(lines[len(lines)-1]), &j) != nil {
		return nil
	}
	c, err := FromJSON(j)
	if err != nil {
		return nil
	}
	return c
}

// Checkpoint signs the newest event if it is not signed yet: the checkpoint
// goes to the witness first, then to the store, in one store transaction.
// A checkpoint the witness has but the store lost (the commit failed after
// the witness write) is stored first, so both keep one numbering.
func Checkpoint(ctx context.Context, st *store.Store, k *Keys, w *Witness, now time.Time) error {
	return st.AddAuditCheckpoint(ctx, func(last *store.AuditCheckpoint, head store.AuditHead) ([]*store.AuditCheckpoint, error) {
		var out []*store.AuditCheckpoint
		if t := w.last(); t != nil && VerifyCheckpoint(k.Public(), t) && t.Seq <= head.Seq &&
			((last == nil && t.N == 1) || (last != nil && t.N == last.N+1 && bytes.Equal(t.Prev, CheckpointDigest(last)))) {
			out = append(out, t)
			last = t
		}
		if head.Seq == 0 || (last != nil && last.Seq >= head.Seq) {
			return out, nil
		}
		c := &store.AuditCheckpoint{N: 1, Seq: head.Seq, Count: head.Seq, At: time.UnixMilli(now.UnixMilli()), Hash: head.Hash, MAC: head.MAC}
		if last != nil {
			c.N, c.Count, c.Prev = last.N+1, head.Seq-last.Seq, CheckpointDigest(last)
		}
		c.Sig = ed25519.Sign(k.Sign, signedBytes(c))
		if err := w.Append(c); err != nil {
			return nil, err
		}
		return append(out, c), nil
	})
}
