package blob_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"sealpost/internal/blob"
	"sealpost/internal/blob/blobtest"
	"sealpost/internal/testutil"
)

// One versitygw for the package, started by TestMain.
var (
	s3srv    *testutil.S3Server
	s3err    error
	s3prefix atomic.Int64
)

func TestMain(m *testing.M) {
	s3srv, s3err = testutil.StartS3()
	code := m.Run()
	s3srv.Stop()
	os.Exit(code)
}

func newS3(t *testing.T, bucket string) *blob.S3 {
	t.Helper()
	if s3err != nil {
		testutil.Missing(t, "no S3 server: %v", s3err)
	}
	s, err := blob.NewS3(blob.S3Config{Endpoint: s3srv.Endpoint, Bucket: bucket, AccessKey: s3srv.AccessKey, SecretKey: s3srv.SecretKey,
		Prefix: fmt.Sprintf("t%d/", s3prefix.Add(1)), TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	s := newS3(t, "conformance")
	if err := s.MakeBucket(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Each subtest gets its own key prefix in the one bucket.
	blobtest.Run(t, func(t *testing.T) blob.Store { return newS3(t, "conformance") })
}

func TestS3PingAndConfig(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newS3(t, "ping")
	if err := s.Ping(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Ping of a missing bucket: %v", err)
	}
	if err := s.MakeBucket(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	wrong, err := blob.NewS3(blob.S3Config{Endpoint: s3srv.Endpoint, Bucket: "ping", AccessKey: s3srv.AccessKey, SecretKey: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if err := wrong.Ping(ctx); err == nil {
		t.Fatal("Ping with a wrong secret succeeded")
	}
	for _, ep := range []string{"", "127.0.0.1:7070", "ftp://127.0.0.1", "http://127.0.0.1:7070/path"} {
		if _, err := blob.NewS3(blob.S3Config{Endpoint: ep, Bucket: "b"}); err == nil {
			t.Errorf("endpoint %q accepted", ep)
		}
	}
}
