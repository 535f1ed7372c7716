// Package rua reads the reports other mail systems send to the
// organisation's reporting addresses: DMARC aggregate reports (RFC 7489
// appendix C, and the RFC 9990 format with its dmarc-2.0 namespace) and
// SMTP TLS reports (RFC 8460 §4). Both arrive as mail attachments, plain
// or compressed (gzip, or zip holding one file: RFC 7489 §7.2.1.1, RFC 8460
// §5.3). The package parses them within size bounds and sums them up per
// sending source, with what to fix; it stores nothing.
package rua

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
)

// MaxReport bounds a decompressed report.
const MaxReport = 20 << 20

// ErrTooLarge is returned for a report larger than MaxReport.
var ErrTooLarge = errors.New("report larger than the limit")

// Unpack returns the report in data: as is, gunzipped, or the one file of
// a zip archive.
func Unpack(data []byte) ([]byte, error) {
	switch {
	case bytes.HasPrefix(data, []byte("\x1f\x8b")):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return readBounded(zr)
	case bytes.HasPrefix(data, []byte("PK\x03\x04")):
		zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return nil, fmt.Errorf("zip: %w", err)
		}
		var files []*zip.File
		for _, f := range zr.File {
			if !f.FileInfo().IsDir() {
				files = append(files, f)
			}
		}
		if len(files) != 1 {
			return nil, fmt.Errorf("zip holds %d files, want one report", len(files))
		}
		if files[0].UncompressedSize64 > MaxReport {
			return nil, ErrTooLarge
		}
		rc, err := files[0].Open()
		if err != nil {
			return nil, fmt.Errorf("zip: %w", err)
		}
		defer rc.Close()
		return readBounded(rc)
	}
	if len(data) > MaxReport {
		return nil, ErrTooLarge
	}
	return data, nil
}

func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxReport+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxReport {
		return nil, ErrTooLarge
	}
	return b, nil
}
