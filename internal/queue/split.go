package queue

import (
	"bytes"
	"io"
)

// addressedTo returns the message in body with its To and Cc fields
// replaced by "To: <rcpt>": a bulk message split so that no recipient sees
// the others' addresses. The body after the header is read in place.
func addressedTo(body io.ReaderAt, size int64, rcpt string) (io.ReaderAt, int64) {
	head := make([]byte, min(size, 64<<10))
	n, _ := body.ReadAt(head, 0)
	head = head[:n]
	end := bytes.Index(head, []byte("\r\n\r\n"))
	if end < 0 {
		return body, size // a header longer than 64 KiB: leave it
	}
	end += 2
	var out bytes.Buffer
	wrote := false
	lines := bytes.SplitAfter(head[:end], []byte("\r\n"))
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if isField(l, "to:") || isField(l, "cc:") {
			for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
				i++ // continuation lines of the field
			}
			if !wrote {
				out.WriteString("To: <" + rcpt + ">\r\n")
				wrote = true
			}
			continue
		}
		out.Write(l)
	}
	if !wrote {
		out.WriteString("To: <" + rcpt + ">\r\n")
	}
	newHead := out.Bytes()
	rest := io.NewSectionReader(body, int64(end), size-int64(end))
	return &joined{head: newHead, rest: rest}, int64(len(newHead)) + size - int64(end)
}

func isField(l []byte, name string) bool {
	return len(l) >= len(name) && bytes.EqualFold(l[:len(name)], []byte(name))
}

// joined is head followed by rest, as an io.ReaderAt.
type joined struct {
	head []byte
	rest *io.SectionReader
}

func (j *joined) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(j.head)) {
		n = copy(p, j.head[off:])
		if n == len(p) {
			return n, nil
		}
	}
	m, err := j.rest.ReadAt(p[n:], max(0, off-int64(len(j.head))))
	return n + m, err
}
