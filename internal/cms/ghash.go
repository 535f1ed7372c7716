package cms

import (
	"crypto/cipher"
	"encoding/binary"
	"errors"
)

// gcmStream is AES-GCM (NIST SP 800-38D) for a 96-bit nonce and empty
// additional data, computed as the content streams past: AES-CTR from
// inc32(J0) for the ciphertext (§7.1 step 3) and GHASH over it for the tag.
// crypto/cipher's AEAD seals a whole message at once, which would make
// memory grow with the message.
type gcmStream struct {
	ctr   cipher.Stream
	h     ghash
	y     fieldElement
	tagJ0 [16]byte // E(K, J0), XORed into the final GHASH value
	buf   [16]byte // a partial ciphertext block not yet hashed
	nbuf  int
	n     uint64 // ciphertext bytes so far
}

// maxGCMBytes: the 32-bit block counter of GCM covers 2^32-2 blocks; beyond
// that crypto/cipher's 128-bit CTR would no longer match inc32.
const maxGCMBytes = (1<<32 - 2) * 16

func newGCMStream(block cipher.Block, nonce []byte) (*gcmStream, error) {
	if block.BlockSize() != 16 || len(nonce) != 12 {
		return nil, errors.New("cms: GCM needs a 128-bit block cipher and a 96-bit nonce")
	}
	var h, j0 [16]byte
	block.Encrypt(h[:], h[:])
	copy(j0[:], nonce)
	j0[15] = 1
	g := &gcmStream{h: newGHASH(h)}
	block.Encrypt(g.tagJ0[:], j0[:])
	j0[15] = 2
	g.ctr = cipher.NewCTR(block, j0[:])
	return g, nil
}

// seal encrypts p in place and hashes the ciphertext.
func (g *gcmStream) seal(p []byte) {
	g.ctr.XORKeyStream(p, p)
	g.n += uint64(len(p))
	if g.nbuf > 0 {
		k := copy(g.buf[g.nbuf:], p)
		g.nbuf += k
		p = p[k:]
		if g.nbuf < 16 {
			return
		}
		g.h.update(&g.y, g.buf[:])
		g.nbuf = 0
	}
	full := len(p) &^ 15
	g.h.update(&g.y, p[:full])
	g.nbuf = copy(g.buf[:], p[full:])
}

// tag finishes GHASH with the length block (§7.1 steps 5-6).
func (g *gcmStream) tag() []byte {
	if g.nbuf > 0 {
		clear(g.buf[g.nbuf:])
		g.h.update(&g.y, g.buf[:])
		g.nbuf = 0
	}
	g.y.high ^= g.n * 8 // len(A) is 0: only len(C) in bits
	g.h.mul(&g.y)
	out := make([]byte, 16)
	binary.BigEndian.PutUint64(out, g.y.low)
	binary.BigEndian.PutUint64(out[8:], g.y.high)
	for i := range out {
		out[i] ^= g.tagJ0[i]
	}
	return out
}

// fieldElement is an element of GF(2^128) in GCM's bit order: low holds the
// first eight bytes of a block.
type fieldElement struct{ low, high uint64 }

// ghash multiplies by H with a 4-bit table (Shoup's method), as Go's
// generic GCM did before it moved into crypto/internal.
type ghash struct{ table [16]fieldElement }

func newGHASH(h [16]byte) ghash {
	var g ghash
	x := fieldElement{binary.BigEndian.Uint64(h[:8]), binary.BigEndian.Uint64(h[8:])}
	g.table[reverseBits(1)] = x
	for i := 2; i < 16; i += 2 {
		g.table[reverseBits(i)] = double(g.table[reverseBits(i/2)])
		t := g.table[reverseBits(i)]
		g.table[reverseBits(i+1)] = fieldElement{t.low ^ x.low, t.high ^ x.high}
	}
	return g
}

func reverseBits(i int) int {
	i = ((i << 2) & 0xc) | ((i >> 2) & 0x3)
	i = ((i << 1) & 0xa) | ((i >> 1) & 0x5)
	return i
}

func double(x fieldElement) fieldElement {
	msb := x.high&1 == 1
	d := fieldElement{low: x.low >> 1, high: x.high>>1 | x.low<<63}
	if msb {
		d.low ^= 0xe100000000000000
	}
	return d
}

var reduction = [16]uint16{
	0x0000, 0x1c20, 0x3840, 0x2460, 0x7080, 0x6ca0, 0x48c0, 0x54e0,
	0xe100, 0xfd20, 0xd940, 0xc560, 0x9180, 0x8da0, 0xa9c0, 0xb5e0,
}

func (g *ghash) mul(y *fieldElement) {
	var z fieldElement
	for i := 0; i < 2; i++ {
		word := y.high
		if i == 1 {
			word = y.low
		}
		for j := 0; j < 64; j += 4 {
			msw := z.high & 0xf
			z.high = z.high>>4 | z.low<<60
			z.low = z.low>>4 ^ uint64(reduction[msw])<<48
			t := &g.table[word&0xf]
			z.low ^= t.low
			z.high ^= t.high
			word >>= 4
		}
	}
	*y = z
}

// update hashes whole 16-byte blocks.
func (g *ghash) update(y *fieldElement, blocks []byte) {
	for len(blocks) >= 16 {
		y.low ^= binary.BigEndian.Uint64(blocks)
		y.high ^= binary.BigEndian.Uint64(blocks[8:])
		g.mul(y)
		blocks = blocks[16:]
	}
}
