package portal

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"sealpost/internal/blob"
	"sealpost/internal/testutil"
)

// TestSanitiserAgainstXSSCorpus runs DOMPurify's 223 test vectors
// (testdata/html-xss) through the message HTML policy and checks the output
// as the corpus README says: no element or attribute that can run script
// or load a document, no dangerous URL, no CSS expression. (The browser
// test loads the same vectors in Chromium with dialogs watched.)
func TestSanitiserAgainstXSSCorpus(t *testing.T) {
	b, err := os.ReadFile("../../testdata/html-xss/dompurify/expect.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct{ Title, Payload string }
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) < 200 {
		t.Fatalf("%d cases", len(cases))
	}
	for _, c := range cases {
		out := strictPolicy.Sanitize(c.Payload)
		if why := testutil.UnsafeHTML(out); why != "" {
			t.Errorf("%s: %s\n  in:  %q\n  out: %q", c.Title, why, c.Payload, out)
		}
	}
}

func TestB64Reader(t *testing.T) {
	for _, n := range []int{0, 1, 2, 3, 57, 58, 1000, 300000} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i * 7)
		}
		enc := base64.StdEncoding.EncodeToString(data)
		var lines []string
		for len(enc) > 76 {
			lines, enc = append(lines, enc[:76]), enc[76:]
		}
		lines = append(lines, enc)
		got, err := io.ReadAll(iotest.OneByteReader(newB64Reader(strings.NewReader(strings.Join(lines, "\r\n") + "\r\n"))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("n=%d: %d bytes, %v", n, len(got), err)
		}
		got, err = io.ReadAll(newB64Reader(iotest.HalfReader(strings.NewReader(strings.Join(lines, "\n ")))))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("n=%d (half reader): %d bytes, %v", n, len(got), err)
		}
	}
	if _, err := io.ReadAll(newB64Reader(strings.NewReader("!!!!"))); err == nil {
		t.Fatal("no error for bad base64")
	}
}

// FuzzDescribe: the portal's MIME walk never panics; an attachment listed
// as stored has the size of what was stored, and what was stored is what a
// second walk (a download of an unstored attachment) decodes; one that did
// not decode is listed with nothing stored.
//
// save follows the contract of Service.writeBlob (TestWriteBlobKeepsNothing
// OnError): on an error it keeps nothing and returns 0. The first version
// of this fuzzer kept what it had read before the error, so an attachment
// cut off by a missing closing boundary (testdata/fuzz/FuzzDescribe) looked
// stored with a size of 0.
func FuzzDescribe(f *testing.F) {
	f.Add([]byte("From: a@b\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nhi\r\n--x\r\nContent-Disposition: attachment; filename=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--x--\r\n"))
	f.Add([]byte("Subject: x\r\nContent-Type: text/html\r\n\r\n<p>hi"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment; filename=cut.bin\r\n\r\nno closing boundary"))
	f.Add([]byte("Content-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Disposition: attachment; filename=b.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!!\r\n--x--\r\n"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		const limit = 1 << 20
		saved := map[int][]byte{}
		p, _, err := describe(bytes.NewReader(msg), func(i int, r io.Reader) (int64, error) {
			b, err := io.ReadAll(io.LimitReader(r, limit))
			if err != nil {
				return 0, err
			}
			saved[i] = b
			return int64(len(b)), nil
		})
		if err != nil || p == nil {
			return
		}
		stored := map[int]bool{}
		for _, a := range p.Attachments {
			b, ok := saved[a.Index]
			switch {
			case a.Stored && (!ok || a.Size != int64(len(b))):
				t.Fatalf("attachment %d: size %d, saved %d", a.Index, a.Size, len(b))
			case !a.Stored && (ok || a.Size != 0):
				t.Fatalf("attachment %d not stored, yet size %d and saved %v", a.Index, a.Size, ok)
			}
			stored[a.Index] = a.Stored
		}
		walk(bytes.NewReader(msg), func(l *leaf) bool {
			if stored[l.index] {
				b, _ := io.ReadAll(io.LimitReader(l.decoded, limit))
				if !bytes.Equal(b, saved[l.index]) {
					t.Fatalf("attachment %d: a second walk decodes %q, stored %q", l.index, b, saved[l.index])
				}
			}
			return true
		})
	})
}

// TestWriteBlobKeepsNothingOnError: an attachment whose bytes fail to
// decode half-way leaves no blob (nor temporary file) behind, which is
// what describe's callers rely on, and the error is the source's (not the
// disk's, which would retry the whole sealing).
func TestWriteBlobKeepsNothingOnError(t *testing.T) {
	dir := t.TempDir()
	s := &Service{Dir: dir}
	r := io.MultiReader(strings.NewReader("first bytes"), iotest.ErrReader(io.ErrUnexpectedEOF))
	n, err := s.writeBlob(context.Background(), "at/att.0", make([]byte, 32), []byte("aad"), r)
	var pe *os.PathError
	if !errors.Is(err, io.ErrUnexpectedEOF) || errors.As(err, &pe) || n != 0 {
		t.Fatalf("writeBlob = %d, %v; want 0 and the source's error", n, err)
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			t.Errorf("left behind: %s", p)
		}
		return nil
	})
}

// failingBlobs is a blob store whose writes fail (a full disk, a bucket
// that does not answer).
type failingBlobs struct{ blob.Store }

func (failingBlobs) Put(ctx context.Context, ref blob.Ref, r io.Reader, size int64) error {
	io.CopyN(io.Discard, r, 100)
	return errors.New("bucket unreachable")
}

// A blob store's failure is a *os.PathError to describe and sealFrom: the
// sealing fails and is retried, not taken for an undecodable attachment.
func TestWriteBlobStoreFailureIsRetried(t *testing.T) {
	s := &Service{Blobs: failingBlobs{}}
	_, err := s.writeBlob(context.Background(), "at/att.0", make([]byte, 32), []byte("aad"), strings.NewReader(strings.Repeat("x", 1<<20)))
	var pe *os.PathError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "bucket unreachable") {
		t.Fatalf("writeBlob = %v; want a *os.PathError naming the store's failure", err)
	}
}
