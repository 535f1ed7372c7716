package portal

import (
	"context"
	"errors"
	"io"
	"os"

	"sealpost/internal/blob"
	"sealpost/internal/seal"
)

var errPutEnded = errors.New("the blob store stopped reading")

// writeSealed seals r into a new blob at ref: durable when it returns (the
// portal's row is committed after), never over an existing blob. It returns
// the plaintext bytes written; on error nothing is left at ref. A failure
// of the blob store is an *os.PathError (the disk, the bucket: the sealing
// is retried); a failure of r is r's own error.
func writeSealed(ctx context.Context, bs blob.Store, ref blob.Ref, key, aad []byte, r io.Reader) (int64, error) {
	pr, pw := io.Pipe()
	var n int64
	done := make(chan error, 1)
	go func() {
		w, err := seal.NewWriter(pw, key, aad)
		if err == nil {
			if n, err = io.CopyBuffer(w, r, make([]byte, 256<<10)); err == nil {
				err = w.Close()
			}
		}
		pw.CloseWithError(err) // nil: the reader sees the end
		done <- err
	}()
	err := bs.Put(ctx, ref, pr, -1)
	if err != nil {
		pr.CloseWithError(errPutEnded)
	}
	werr := <-done
	switch {
	case werr != nil && !errors.Is(werr, errPutEnded):
		return 0, werr
	case err != nil:
		return 0, &os.PathError{Op: "store blob", Path: string(ref), Err: err}
	}
	return n, nil
}
