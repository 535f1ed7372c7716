package blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config says where an S3 backend's bucket is.
type S3Config struct {
	Endpoint  string // "http://127.0.0.1:7070" or "https://s3.example.net"
	Bucket    string
	Region    string // default "us-east-1"
	AccessKey string
	SecretKey string
	Prefix    string // put before every Ref, to share a bucket ("sealpost/")
	// TempDir holds a Put's bytes while their length is unknown (a single
	// PUT needs it up front); "" is the system's.
	TempDir string
}

// S3 keeps blobs as objects of one bucket. Put is a single PUT with
// If-None-Match: * (the bucket refuses it, 412, over an existing key), so
// a retry never replaces an object; with a versioned bucket an erroneous
// delete can be undone. Bytes are already sealed when they get here.
type S3 struct {
	core   minio.Core
	bucket string
	prefix string
	tmp    string
}

// NewS3 returns the S3 backend of cfg. It does not talk to the server:
// Ping does.
func NewS3(cfg S3Config) (*S3, error) {
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") {
		return nil, fmt.Errorf("blob: s3 endpoint %q: want http://HOST:PORT or https://HOST[:PORT]", cfg.Endpoint)
	}
	if cfg.Bucket == "" {
		return nil, errors.New("blob: s3 bucket not set")
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	c, err := minio.New(u.Host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: u.Scheme == "https",
		Region: region,
	})
	if err != nil {
		return nil, fmt.Errorf("blob: s3 endpoint %q: %w", cfg.Endpoint, err)
	}
	return &S3{core: minio.Core{Client: c}, bucket: cfg.Bucket, prefix: cfg.Prefix, tmp: cfg.TempDir}, nil
}

// Ping checks that the bucket answers and exists (for /healthz and start).
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("blob: s3 bucket %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("blob: s3 bucket %s does not exist", s.bucket)
	}
	return nil
}

// MakeBucket creates the bucket if it is not there (tests, first setup).
func (s *S3) MakeBucket(ctx context.Context) error {
	if ok, err := s.core.BucketExists(ctx, s.bucket); err == nil && ok {
		return nil
	}
	return s.core.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{})
}

func (s *S3) key(ref Ref) (string, error) {
	if err := ref.Check(); err != nil {
		return "", err
	}
	return s.prefix + string(ref), nil
}

func code(err error) (string, int) {
	r := minio.ToErrorResponse(err)
	return r.Code, r.StatusCode
}

func notFound(err error) bool {
	c, st := code(err)
	return c == "NoSuchKey" || c == "NotFound" || st == http.StatusNotFound
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, ref Ref, r io.Reader, size int64) error {
	key, err := s.key(ref)
	if err != nil {
		return err
	}
	if size < 0 {
		f, err := os.CreateTemp(s.tmp, "sealpost-blob-*")
		if err != nil {
			return fmt.Errorf("blob: buffering a put: %w", err)
		}
		defer f.Close()
		os.Remove(f.Name()) // the open descriptor keeps it until Close
		if size, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
			return err
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		r = f
	}
	opts := minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true}
	opts.SetMatchETagExcept("*")
	_, err = s.core.PutObject(ctx, s.bucket, key, r, size, "", "", opts)
	if err != nil {
		if c, st := code(err); c == "PreconditionFailed" || st == http.StatusPreconditionFailed {
			return ErrExists
		}
		return fmt.Errorf("blob: s3 put %s: %w", ref, err)
	}
	return nil
}

// Get implements Store.
func (s *S3) Get(ctx context.Context, ref Ref, off, n int64) (io.ReadCloser, error) {
	key, err := s.key(ref)
	if err != nil {
		return nil, err
	}
	if off < 0 {
		return nil, ErrRange
	}
	if n == 0 {
		// No Range header can ask for nothing: check the blob is there and
		// long enough, and read nothing.
		info, err := s.Stat(ctx, ref)
		if err != nil {
			return nil, err
		}
		if off >= info.Size {
			return nil, ErrRange
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	var opts minio.GetObjectOptions
	switch {
	case off == 0 && n < 0:
	case n < 0:
		err = opts.SetRange(off, 0)
	default:
		err = opts.SetRange(off, off+n-1)
	}
	if err != nil {
		return nil, err
	}
	rc, _, _, err := s.core.GetObject(ctx, s.bucket, key, opts)
	if err != nil {
		if c, st := code(err); c == "InvalidRange" || st == http.StatusRequestedRangeNotSatisfiable {
			return nil, ErrRange
		}
		if notFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("blob: s3 get %s: %w", ref, err)
	}
	return rc, nil
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, ref Ref) (Info, error) {
	key, err := s.key(ref)
	if err != nil {
		return Info{}, err
	}
	oi, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return Info{}, ErrNotFound
		}
		return Info{}, fmt.Errorf("blob: s3 stat %s: %w", ref, err)
	}
	return Info{Ref: ref, Size: oi.Size}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, ref Ref) error {
	key, err := s.key(ref)
	if err != nil {
		return err
	}
	if err := s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("blob: s3 delete %s: %w", ref, err)
	}
	return nil
}

// List implements Store. S3 lists keys in UTF-8 byte order, which is Ref
// order.
func (s *S3) List(ctx context.Context, prefix string, f func(Info) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when f stops early
	for oi := range s.core.Client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if oi.Err != nil {
			return fmt.Errorf("blob: s3 list %q: %w", prefix, oi.Err)
		}
		ref := Ref(oi.Key[len(s.prefix):])
		if ref.Check() != nil {
			continue // not ours: a key no Ref can name
		}
		if err := f(Info{Ref: ref, Size: oi.Size}); err != nil {
			return err
		}
	}
	return ctx.Err()
}
