// Package seal encrypts message data at rest as a stream, so that a message of
// any size is encrypted and decrypted with a fixed, small amount of memory.
//
// The format is a chunked AEAD in the style of the STREAM construction
// (Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and
// its Nonce-Reuse Misuse-Resistance", 2015):
//
//	header:  "SPL1" | 32-byte random salt
//	chunks:  AES-256-GCM(fileKey, nonce = counter(8 bytes, big endian) | final(4 bytes), chunk, aad)
//
// The file key is HKDF-SHA256(key, salt): every file has its own key, so the
// 96-bit nonces, which only count chunks, never repeat under one key. Every
// chunk but the last holds exactly ChunkSize bytes of plaintext; the last
// holds fewer (possibly none) and is sealed with the final flag, so a
// truncated, extended or reordered file fails to open. The caller's
// additional data (for the spool: the message id) binds a file to its name,
// so files cannot be swapped.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
)

// bufPool holds chunk buffers (room for a header and a sealed chunk):
// a busy gateway seals and opens thousands of messages a second, and
// fresh 64 KiB buffers for each would keep the garbage collector busy.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, HeaderLen+sealedSize)
	return &b
}}

func getBuf() []byte  { return (*bufPool.Get().(*[]byte))[:0] }
func putBuf(b []byte) { b = b[:0]; bufPool.Put(&b) }

const (
	magic      = "SPL1"
	saltLen    = 32
	HeaderLen  = len(magic) + saltLen
	ChunkSize  = 64 << 10
	tagLen     = 16
	sealedSize = ChunkSize + tagLen
)

// KeyLen is the length of keys this package takes.
const KeyLen = 32

// ErrCorrupt is returned for data that fails authentication or is truncated.
var ErrCorrupt = errors.New("sealed data is corrupt or was tampered with")

func fileAEAD(key, salt []byte) (cipher.AEAD, error) {
	if len(key) != KeyLen {
		return nil, fmt.Errorf("seal: key must be %d bytes", KeyLen)
	}
	fk, err := hkdf.Key(sha256.New, key, salt, "sealpost stream v1", 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(fk)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func nonce(dst *[12]byte, counter uint64, final bool) []byte {
	binary.BigEndian.PutUint64(dst[:8], counter)
	var f uint32
	if final {
		f = 1
	}
	binary.BigEndian.PutUint32(dst[8:], f)
	return dst[:]
}

// Writer encrypts what is written to it. Close must be called to write the
// final chunk; without it the data cannot be read back. The header goes out
// with the first chunk, so a small message is one write.
type Writer struct {
	w       io.Writer
	aead    cipher.AEAD
	aad     []byte
	hdr     []byte // not yet written
	buf     []byte // plaintext of the current chunk, cap ChunkSize
	out     []byte // header (first time) and sealed chunk
	counter uint64
	n       int64
	closed  bool
	nonce   [12]byte
}

// NewWriter returns a Writer sealing with key into w.
func NewWriter(w io.Writer, key, aad []byte) (*Writer, error) {
	hdr := make([]byte, HeaderLen)
	copy(hdr, magic)
	if _, err := rand.Read(hdr[len(magic):]); err != nil {
		return nil, err
	}
	aead, err := fileAEAD(key, hdr[len(magic):])
	if err != nil {
		return nil, err
	}
	return &Writer{w: w, aead: aead, aad: aad, hdr: hdr, buf: getBuf(), out: getBuf()}, nil
}

func (w *Writer) Write(p []byte) (int, error) {
	if w.closed {
		return 0, errors.New("seal: write after close")
	}
	written := 0
	for len(p) > 0 {
		n := copy(w.buf[len(w.buf):ChunkSize], p)
		w.buf = w.buf[:len(w.buf)+n]
		p = p[n:]
		written += n
		if len(w.buf) == ChunkSize {
			if err := w.flush(false); err != nil {
				return written, err
			}
		}
	}
	w.n += int64(written)
	return written, nil
}

func (w *Writer) flush(final bool) error {
	out := append(w.out[:0], w.hdr...)
	w.hdr = nil
	w.out = w.aead.Seal(out, nonce(&w.nonce, w.counter, final), w.buf, w.aad)
	w.counter++
	w.buf = w.buf[:0]
	_, err := w.w.Write(w.out)
	return err
}

// Size is the number of plaintext bytes written so far.
func (w *Writer) Size() int64 { return w.n }

// Close writes the final chunk. It does not close the underlying writer.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.flush(true)
	putBuf(w.buf)
	putBuf(w.out)
	w.buf, w.out = nil, nil
	return err
}

// SealedLen is the size of the sealed form of n plaintext bytes.
func SealedLen(n int64) int64 {
	return int64(HeaderLen) + (n/ChunkSize)*sealedSize + n%ChunkSize + tagLen
}

// plainLen is the plaintext size of a sealed stream of n bytes.
func plainLen(n int64) (int64, error) {
	body := n - int64(HeaderLen)
	if body < tagLen {
		return 0, ErrCorrupt
	}
	full, rem := body/sealedSize, body%sealedSize
	if rem < tagLen {
		return 0, ErrCorrupt // the final chunk is missing
	}
	return full*ChunkSize + rem - tagLen, nil
}

// ReaderAt gives random access to sealed data of known size, decrypting one
// chunk at a time. It keeps the last chunk it decrypted, so sequential reads
// decrypt each chunk once. It is not safe for concurrent use.
type ReaderAt struct {
	r     io.ReaderAt
	aead  cipher.AEAD
	aad   []byte
	size  int64 // plaintext
	last  int64 // index of the last chunk
	cur   int64 // index of the chunk in plain, -1 for none
	plain []byte
	in    []byte
	nonce [12]byte
}

// NewReaderAt opens sealed data of sealedSize bytes read through r.
func NewReaderAt(r io.ReaderAt, sealedSize int64, key, aad []byte) (*ReaderAt, error) {
	size, err := plainLen(sealedSize)
	if err != nil {
		return nil, err
	}
	hdr := make([]byte, HeaderLen)
	if _, err := r.ReadAt(hdr, 0); err != nil {
		return nil, fmt.Errorf("seal: reading header: %w", err)
	}
	if string(hdr[:len(magic)]) != magic {
		return nil, ErrCorrupt
	}
	aead, err := fileAEAD(key, hdr[len(magic):])
	if err != nil {
		return nil, err
	}
	ra := &ReaderAt{r: r, aead: aead, aad: aad, size: size, last: size / ChunkSize, cur: -1}
	// Authenticate the final chunk now: it proves the stream is not
	// truncated, and an empty stream would otherwise never be checked.
	if err := ra.load(ra.last); err != nil {
		ra.Release()
		return nil, err
	}
	return ra, nil
}

// Size is the plaintext size.
func (ra *ReaderAt) Size() int64 { return ra.size }

func (ra *ReaderAt) load(idx int64) error {
	if idx == ra.cur {
		return nil
	}
	n := sealedSize
	if idx == ra.last {
		n = int(ra.size%ChunkSize) + tagLen
	}
	if ra.in == nil {
		ra.in, ra.plain = getBuf(), getBuf()
	}
	in := ra.in[:n]
	if _, err := ra.r.ReadAt(in, int64(HeaderLen)+idx*sealedSize); err != nil {
		if errors.Is(err, io.EOF) {
			return ErrCorrupt
		}
		return err
	}
	plain, err := ra.aead.Open(ra.plain[:0], nonce(&ra.nonce, uint64(idx), idx == ra.last), in, ra.aad)
	if err != nil {
		ra.cur = -1
		return ErrCorrupt
	}
	ra.plain, ra.cur = plain, idx
	return nil
}

// ReadAt implements io.ReaderAt over the plaintext.
func (ra *ReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("seal: negative offset")
	}
	n := 0
	for n < len(p) {
		if off >= ra.size {
			return n, io.EOF
		}
		idx := off / ChunkSize
		if err := ra.load(idx); err != nil {
			return n, err
		}
		c := copy(p[n:], ra.plain[off-idx*ChunkSize:])
		n += c
		off += int64(c)
	}
	return n, nil
}

// Release returns the ReaderAt's buffers for reuse; it must not be used
// afterwards.
func (ra *ReaderAt) Release() {
	if ra.in != nil {
		putBuf(ra.in)
		putBuf(ra.plain)
		ra.in, ra.plain, ra.cur = nil, nil, -1
	}
}

// Reader returns a sequential reader over the plaintext from the start.
func (ra *ReaderAt) Reader() io.Reader { return io.NewSectionReader(ra, 0, ra.size) }
