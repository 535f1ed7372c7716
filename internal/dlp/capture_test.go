package dlp

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

// The streaming delimiter count agrees with counting the whole body, however
// the reads split it, and the kept copy never passes the scan's budget.
func TestCaptureCountsDelimitersStreaming(t *testing.T) {
	body := strings.Repeat("x--b1y\r\n--b1\r\n--", 50) + "--b1--"
	want := strings.Count(body, "--b1")
	for _, step := range []int{1, 2, 3, 4, 5, 7, 64, 4096} {
		s := &scan{}
		c := s.newCapture(&chunked{r: strings.NewReader(body), n: step}, 1<<20, "--b1")
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatal(err)
		}
		if c.count != want {
			t.Errorf("reads of %d bytes: counted %d delimiters, want %d", step, c.count, want)
		}
	}
}

func TestCaptureBudgetSharedAcrossLevels(t *testing.T) {
	s := &scan{}
	big := bytes.Repeat([]byte("a"), captureBudget/2+1)
	outer := s.newCapture(bytes.NewReader(big), 1<<30, "")
	io.Copy(io.Discard, outer)
	inner := s.newCapture(bytes.NewReader(big), 1<<30, "")
	io.Copy(io.Discard, inner)
	if !inner.over || outer.over {
		t.Fatalf("outer over %v, inner over %v: the second copy should not fit the budget", outer.over, inner.over)
	}
	outer.drop()
	if *s.captureLeft != captureBudget {
		t.Fatalf("budget left %d after both dropped, want %d", *s.captureLeft, captureBudget)
	}
}

type chunked struct {
	r io.Reader
	n int
}

func (c *chunked) Read(p []byte) (int, error) {
	if len(p) > c.n {
		p = p[:c.n]
	}
	return c.r.Read(p)
}
