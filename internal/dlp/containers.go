package dlp

import (
	"archive/tar"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/bodgit/sevenzip"
	"github.com/klauspost/compress/zstd"
	"github.com/nwaples/rardecode/v2"
	"github.com/ulikunitz/xz"
)

// Containers and encodings are told by their content (magic numbers), not
// by the name or type a sender gave them: a gzip renamed report.txt is
// still read as gzip.

// sniff names the container format data starts with, "" if none.
func sniff(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("PK\x03\x04")), bytes.HasPrefix(b, []byte("PK\x05\x06")):
		return "zip"
	case bytes.HasPrefix(b, []byte("%PDF-")):
		return "pdf"
	case bytes.HasPrefix(b, []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")):
		return "ole"
	case bytes.HasPrefix(b, []byte("\x1f\x8b")):
		return "gzip"
	case bytes.HasPrefix(b, []byte("BZh")) && len(b) > 3 && b[3] >= '1' && b[3] <= '9':
		return "bzip2"
	case bytes.HasPrefix(b, []byte("\xfd7zXZ\x00")):
		return "xz"
	case bytes.HasPrefix(b, []byte("\x28\xb5\x2f\xfd")):
		return "zstd"
	case bytes.HasPrefix(b, []byte("7z\xbc\xaf\x27\x1c")):
		return "7z"
	case bytes.HasPrefix(b, []byte("Rar!\x1a\x07")):
		return "rar"
	case len(b) >= 263 && string(b[257:262]) == "ustar":
		return "tar"
	}
	return ""
}

// bomOf names the Unicode encoding a byte order mark announces (what
// Windows and Excel write as "Unicode text"), "" for none or UTF-8.
func bomOf(b []byte) string {
	switch {
	case bytes.HasPrefix(b, []byte("\xff\xfe\x00\x00")):
		return "utf-32le"
	case bytes.HasPrefix(b, []byte("\x00\x00\xfe\xff")):
		return "utf-32be"
	case bytes.HasPrefix(b, []byte("\xff\xfe")):
		return "utf-16le"
	case bytes.HasPrefix(b, []byte("\xfe\xff")):
		return "utf-16be"
	}
	return ""
}

// fromBOM turns UTF-16/32 text with a byte order mark into UTF-8.
func fromBOM(b []byte, enc string) []byte {
	out := make([]byte, 0, len(b)/2)
	switch enc {
	case "utf-16le", "utf-16be":
		b = b[2:]
		u := make([]uint16, 0, len(b)/2)
		for i := 0; i+1 < len(b); i += 2 {
			if enc == "utf-16le" {
				u = append(u, uint16(b[i])|uint16(b[i+1])<<8)
			} else {
				u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
			}
		}
		for _, r := range utf16.Decode(u) {
			out = utf8.AppendRune(out, r)
		}
	case "utf-32le", "utf-32be":
		b = b[4:]
		for i := 0; i+3 < len(b); i += 4 {
			var r uint32
			if enc == "utf-32le" {
				r = uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24
			} else {
				r = uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
			}
			out = utf8.AppendRune(out, rune(r))
		}
	}
	return out
}

// mostlyText says whether a binary part is in fact text with some stray
// bytes (a log with NULs, a CSV with a bad byte): at least 90% printable.
func mostlyText(b []byte) bool {
	b = b[:min(len(b), 8192)]
	if len(b) == 0 {
		return false
	}
	good := 0
	for _, c := range b {
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\r' || c == '\t' || c >= 0x80 {
			good++
		}
	}
	return good*10 >= len(b)*9
}

// bounded reads a decompressor's output within the scan's limits: the
// expansion ratio against the compressed size and the bytes left.
func (s *scan) bounded(r io.Reader, compressed int) ([]byte, error) {
	limit := min(s.e.limits.maxPart(), s.e.limits.MaxBytes-s.expanded)
	if ratio := int64(compressed) * s.e.limits.MaxRatio; ratio < limit {
		limit = max(ratio, 1<<16)
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: expands past %d bytes (compression ratio or size)", errLimit, limit)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// compressed scans a gzip, bzip2, xz or zstd stream as the file it holds.
func (s *scan) compressed(data []byte, kind, name, where string, depth int) {
	var r io.Reader
	var err error
	switch kind {
	case "gzip":
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(data)); err == nil {
			if zr.Name != "" {
				name = zr.Name
			}
			r = zr
		}
	case "bzip2":
		r = bzip2.NewReader(bytes.NewReader(data))
	case "xz":
		r, err = xz.NewReader(bytes.NewReader(data))
	case "zstd":
		var d *zstd.Decoder
		if d, err = zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(s.e.limits.maxPart()))); err == nil {
			defer d.Close()
			r = d
		}
	}
	if err != nil {
		s.unscannable(where, "corrupt "+kind+" stream")
		return
	}
	b, err := s.bounded(r, len(data))
	if err != nil {
		if errors.Is(err, errLimit) {
			s.unscannable(where, err.Error())
		} else {
			s.unscannable(where, "corrupt "+kind+" stream")
		}
		return
	}
	inner := strings.TrimSuffix(name, path.Ext(name))
	if kind == "gzip" && name != "" && !strings.HasSuffix(strings.ToLower(name), ".gz") {
		inner = name // the name stored in the gzip header
	}
	s.part(b, "", inner, where, depth+1)
}

// tarball scans the files of a tar archive (POSIX ustar, GNU).
func (s *scan) tarball(data []byte, where string, depth int) {
	tr := tar.NewReader(bytes.NewReader(data))
	for n := 0; ; n++ {
		hd, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			s.unscannable(where, "corrupt tar archive")
			return
		}
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
		if hd.Typeflag != tar.TypeReg && hd.Typeflag != tar.TypeRegA {
			continue
		}
		if hd.Size+s.expanded > s.e.limits.MaxBytes {
			s.unscannable(where+"/"+hd.Name, "larger than the scanning limit")
			continue
		}
		b, err := io.ReadAll(io.LimitReader(tr, hd.Size))
		if err != nil {
			s.unscannable(where+"/"+hd.Name, "corrupt entry")
			continue
		}
		s.part(b, "", hd.Name, where+"/"+hd.Name, depth+1)
		if n > 10000 {
			s.unscannable(where, "too many entries")
			return
		}
	}
}

// sevenZip scans the files of a 7z archive.
func (s *scan) sevenZip(data []byte, where string, depth int) {
	zr, err := sevenzip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		if strings.Contains(strings.ToLower(err.Error()), "password") || strings.Contains(err.Error(), "encrypt") {
			s.unscannable(where, "encrypted")
		} else {
			s.unscannable(where, "corrupt 7z archive")
		}
		return
	}
	for _, f := range zr.File {
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
		if f.FileInfo().IsDir() {
			continue
		}
		rc, err := f.Open()
		if err != nil {
			s.unscannable(where+"/"+f.Name, "cannot be opened (encrypted or corrupt)")
			continue
		}
		b, err := s.bounded(rc, len(data))
		rc.Close()
		if err != nil {
			s.unscannable(where+"/"+f.Name, "cannot be read: "+err.Error())
			continue
		}
		s.part(b, "", f.Name, where+"/"+f.Name, depth+1)
	}
}

// rar scans the files of a RAR archive (versions 1.5 to 5).
func (s *scan) rar(data []byte, where string, depth int) {
	rr, err := rardecode.NewReader(bytes.NewReader(data))
	if err != nil {
		s.unscannable(where, "corrupt rar archive")
		return
	}
	for n := 0; ; n++ {
		hd, err := rr.Next()
		if err == io.EOF {
			if n == 0 {
				s.unscannable(where, "rar archive without files")
			}
			return
		}
		if err != nil {
			if errors.Is(err, rardecode.ErrArchiveEncrypted) || errors.Is(err, rardecode.ErrArchivedFileEncrypted) {
				s.unscannable(where, "encrypted")
			} else {
				s.unscannable(where, "corrupt rar archive")
			}
			return
		}
		if hd.IsDir {
			continue
		}
		if hd.Encrypted {
			s.unscannable(where+"/"+hd.Name, "encrypted")
			continue
		}
		b, err := s.bounded(rr, len(data))
		if err != nil {
			s.unscannable(where+"/"+hd.Name, "cannot be read: "+err.Error())
			continue
		}
		s.part(b, "", hd.Name, where+"/"+hd.Name, depth+1)
		if err := s.over(); err != nil {
			s.unscannable(where, err.Error())
			return
		}
	}
}
