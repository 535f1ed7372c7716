package attach

import (
	"encoding/binary"
	"unicode/utf16"
)

// oleEntry is a storage (children) or a stream (data) of a test compound
// file.
type oleEntry struct {
	name     string
	children []oleEntry
	data     []byte
}

// buildOLE writes a minimal [MS-CFB] version 3 compound file: 512-byte
// sectors, one FAT sector, streams padded to the 4096-byte mini-stream
// cutoff so that no mini stream is needed. It lets the tests build legacy
// Office files with and without VBA storages without Office or oletools.
func buildOLE(root []oleEntry) []byte {
	const (
		endOfChain = 0xfffffffe
		fatSect    = 0xfffffffd
		free       = 0xffffffff
		noStream   = 0xffffffff
	)
	type dirent struct {
		name               string
		typ                byte
		left, right, child uint32
		start              uint32
		size               uint32
		data               []byte
	}
	dir := []dirent{{name: "Root Entry", typ: 5, left: noStream, right: noStream, child: noStream, start: endOfChain}}
	var add func(es []oleEntry) uint32
	add = func(es []oleEntry) uint32 {
		first := uint32(noStream)
		prev := -1
		for _, e := range es {
			i := len(dir)
			d := dirent{name: e.name, typ: 2, left: noStream, right: noStream, child: noStream, start: endOfChain}
			if e.children != nil {
				d.typ = 1
			} else {
				d.data = e.data
				for len(d.data) < 4096 {
					d.data = append(d.data, 0)
				}
				d.size = uint32(len(d.data))
			}
			dir = append(dir, d)
			if e.children != nil {
				c := add(e.children)
				dir[i].child = c
			}
			if prev < 0 {
				first = uint32(i)
			} else {
				dir[prev].right = uint32(i)
			}
			prev = i
		}
		return first
	}
	dir[0].child = add(root)
	dirSectors := (len(dir) + 3) / 4
	fat := []uint32{fatSect}
	for i := 0; i < dirSectors; i++ {
		if i == dirSectors-1 {
			fat = append(fat, endOfChain)
		} else {
			fat = append(fat, uint32(len(fat)+1))
		}
	}
	var body []byte
	for i := range dir {
		if dir[i].typ != 2 {
			continue
		}
		dir[i].start = uint32(len(fat))
		n := (len(dir[i].data) + 511) / 512
		for k := 0; k < n; k++ {
			if k == n-1 {
				fat = append(fat, endOfChain)
			} else {
				fat = append(fat, uint32(len(fat)+1))
			}
		}
		d := append([]byte(nil), dir[i].data...)
		for len(d)%512 != 0 {
			d = append(d, 0)
		}
		body = append(body, d...)
	}
	if len(fat) > 128 {
		panic("test compound file too large for one FAT sector")
	}
	le := binary.LittleEndian
	hdr := make([]byte, 512)
	copy(hdr, "\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")
	le.PutUint16(hdr[24:], 0x3e)
	le.PutUint16(hdr[26:], 3)
	le.PutUint16(hdr[28:], 0xfffe)
	le.PutUint16(hdr[30:], 9)
	le.PutUint16(hdr[32:], 6)
	le.PutUint32(hdr[44:], 1)          // FAT sectors
	le.PutUint32(hdr[48:], 1)          // first directory sector
	le.PutUint32(hdr[56:], 4096)       // mini stream cutoff
	le.PutUint32(hdr[60:], endOfChain) // no mini FAT
	le.PutUint32(hdr[68:], endOfChain) // no DIFAT sectors
	le.PutUint32(hdr[76:], 0)          // DIFAT[0]: the FAT is sector 0
	for i := 1; i < 109; i++ {
		le.PutUint32(hdr[76+4*i:], free)
	}
	fatSec := make([]byte, 512)
	for i := 0; i < 128; i++ {
		v := uint32(free)
		if i < len(fat) {
			v = fat[i]
		}
		le.PutUint32(fatSec[4*i:], v)
	}
	dirBytes := make([]byte, dirSectors*512)
	for i := range dirBytes {
		dirBytes[i] = 0
	}
	for k := 0; k < dirSectors*4; k++ {
		e := dirBytes[k*128 : (k+1)*128]
		if k >= len(dir) {
			le.PutUint32(e[68:], noStream)
			le.PutUint32(e[72:], noStream)
			le.PutUint32(e[76:], noStream)
			continue
		}
		d := dir[k]
		u := utf16.Encode([]rune(d.name))
		for j, c := range u {
			le.PutUint16(e[2*j:], c)
		}
		le.PutUint16(e[64:], uint16(2*len(u)+2))
		e[66], e[67] = d.typ, 1
		le.PutUint32(e[68:], d.left)
		le.PutUint32(e[72:], d.right)
		le.PutUint32(e[76:], d.child)
		le.PutUint32(e[116:], d.start)
		le.PutUint32(e[120:], d.size)
	}
	out := append(hdr, fatSec...)
	out = append(out, dirBytes...)
	return append(out, body...)
}
