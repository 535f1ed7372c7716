package portal

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"

	"sealpost/internal/blob"
	"sealpost/internal/fsx"
	"sealpost/internal/seal"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// One S3 server for the package (versitygw), for the blob round trip.
var (
	s3srv *testutil.S3Server
	s3err error
)

func TestMain(m *testing.M) {
	s3srv, s3err = testutil.StartS3()
	code := m.Run()
	s3srv.Stop()
	os.Exit(code)
}

// A sealed message and its attachments written through a blob backend
// open again with the message's key, and removing one message's blobs
// takes its attachments and leaves another message whose id it prefixes.
// On the file backend and on S3: the portal does not care which.
func TestSealedBlobsOnEveryBackend(t *testing.T) {
	t.Parallel()
	backends := map[string]func(t *testing.T) blob.Store{
		"file": func(t *testing.T) blob.Store { return blob.NewFile(fsx.OS{}, t.TempDir()) },
		"s3": func(t *testing.T) blob.Store {
			if s3err != nil {
				testutil.Missing(t, "no S3 server: %v", s3err)
			}
			s, err := blob.NewS3(blob.S3Config{Endpoint: s3srv.Endpoint, Bucket: "portal", AccessKey: s3srv.AccessKey, SecretKey: s3srv.SecretKey, Prefix: "p/"})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.MakeBucket(context.Background()); err != nil {
				t.Fatal(err)
			}
			return s
		},
	}
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			kek := make([]byte, 32)
			rand.Read(kek)
			s := &Service{KEK: kek, Blobs: mk(t)}
			body := make([]byte, 200<<10)
			rand.Read(body)
			seal1 := func(id string) (*store.Sealed, []byte) {
				key := make([]byte, seal.KeyLen)
				rand.Read(key)
				if _, err := s.writeBlob(ctx, blobRef(id), key, []byte(id), bytes.NewReader(body)); err != nil {
					t.Fatal(err)
				}
				if _, err := s.writeBlob(ctx, attachmentRef(id, 1), key, attachmentAAD(id, 1), bytes.NewReader(body[:1000])); err != nil {
					t.Fatal(err)
				}
				wrapped, err := s.wrap(id, key)
				if err != nil {
					t.Fatal(err)
				}
				return &store.Sealed{ID: id, WrappedKey: wrapped, State: "active"}, key
			}
			m, _ := seal1("abcdef")
			other, _ := seal1("abcdefg")
			read := func(m *store.Sealed, att int) ([]byte, error) {
				var ra io.ReaderAt
				var size int64
				var done func()
				var err error
				if att < 0 {
					ra, size, done, err = s.open(m)
				} else {
					ra, size, done, err = s.openAttachment(m, att)
				}
				if err != nil {
					return nil, err
				}
				defer done()
				return io.ReadAll(io.NewSectionReader(ra, 0, size))
			}
			if got, err := read(m, -1); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("message reads back: %d bytes, %v", len(got), err)
			}
			if got, err := read(m, 1); err != nil || !bytes.Equal(got, body[:1000]) {
				t.Fatalf("attachment reads back: %d bytes, %v", len(got), err)
			}
			// Another message's key does not open it.
			swapped := *m
			swapped.WrappedKey = other.WrappedKey
			if _, err := read(&swapped, -1); err == nil {
				t.Fatal("opened with another message's key")
			}
			s.removeBlobs("abcdef")
			if _, err := read(m, -1); err == nil {
				t.Fatal("message still opens after its blobs were removed")
			}
			if _, err := read(m, 1); err == nil {
				t.Fatal("attachment still opens after its blobs were removed")
			}
			if got, err := read(other, -1); err != nil || !bytes.Equal(got, body) {
				t.Fatalf("removing abcdef took abcdefg: %v", err)
			}
			if got, err := read(other, 1); err != nil || !bytes.Equal(got, body[:1000]) {
				t.Fatalf("removing abcdef took abcdefg's attachment: %v", err)
			}
		})
	}
}

// A Service without Blobs keeps the layout of earlier versions under Dir,
// so sealed messages written before blob.Store still open.
func TestSealedBlobsKeepTheOldLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := &Service{Dir: dir}
	key := make([]byte, seal.KeyLen)
	if _, err := s.writeBlob(context.Background(), blobRef("xyz123"), key, []byte("xyz123"), bytes.NewReader([]byte("hello"))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.writeBlob(context.Background(), attachmentRef("xyz123", 2), key, attachmentAAD("xyz123", 2), bytes.NewReader([]byte("att"))); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"xy/xyz123", "xy/xyz123.2"} {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
