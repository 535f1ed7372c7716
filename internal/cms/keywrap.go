package cms

import (
	"crypto/aes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// defaultIV is the initial value of RFC 3394 §2.2.3.1.
var defaultIV = [8]byte{0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6, 0xa6}

// wrapKey is AES key wrap (RFC 3394 §2.2.1, the index-based form).
func wrapKey(kek, key []byte) ([]byte, error) {
	if len(key)%8 != 0 || len(key) < 16 {
		return nil, errors.New("cms: key wrap needs a key of at least 16 bytes in 8-byte blocks")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(key) / 8
	out := make([]byte, 8+len(key))
	copy(out, defaultIV[:])
	copy(out[8:], key)
	var b [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(b[:8], out[:8])
			copy(b[8:], out[i*8:i*8+8])
			block.Encrypt(b[:], b[:])
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(b[:8])^t)
			copy(out[i*8:], b[8:])
		}
	}
	return out, nil
}

// unwrapKey inverts wrapKey and checks the integrity value (RFC 3394
// §2.2.2, §2.2.3), in constant time.
func unwrapKey(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped)%8 != 0 || len(wrapped) < 24 {
		return nil, errors.New("cms: wrapped key has a bad length")
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, err
	}
	n := len(wrapped)/8 - 1
	a := make([]byte, 8)
	copy(a, wrapped[:8])
	r := make([]byte, len(wrapped)-8)
	copy(r, wrapped[8:])
	var b [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			t := uint64(n*j + i)
			binary.BigEndian.PutUint64(b[:8], binary.BigEndian.Uint64(a)^t)
			copy(b[8:], r[(i-1)*8:i*8])
			block.Decrypt(b[:], b[:])
			copy(a, b[:8])
			copy(r[(i-1)*8:], b[8:])
		}
	}
	if subtle.ConstantTimeCompare(a, defaultIV[:]) != 1 {
		return nil, errors.New("cms: key unwrap failed its integrity check")
	}
	return r, nil
}

// x963KDF is the ANSI X9.63 key derivation with SHA-256 that RFC 5753 §3.1.1
// names: Hash(Z || counter || SharedInfo) for counter = 1, 2, ...
func x963KDF(z, sharedInfo []byte, size int) []byte {
	var out []byte
	for counter := uint32(1); len(out) < size; counter++ {
		h := sha256.New()
		h.Write(z)
		var c [4]byte
		binary.BigEndian.PutUint32(c[:], counter)
		h.Write(c[:])
		h.Write(sharedInfo)
		out = h.Sum(out)
	}
	return out[:size]
}
