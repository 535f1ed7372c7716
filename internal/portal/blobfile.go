package portal

import (
	"io"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
)

// writeSealed seals r into path durably: into a temporary file beside it,
// fsynced, renamed into place, and the directory fsynced, so that a blob
// the portal's row points to survives a power cut (the row is committed
// after this returns). It returns the plaintext bytes written; on error
// nothing is left at path.
func writeSealed(fsys fsx.FS, path string, key, aad []byte, r io.Reader) (int64, error) {
	var n int64
	err := fsx.WriteFileFrom(fsys, path, 0o600, func(f io.Writer) error {
		w, err := seal.NewWriter(f, key, aad)
		if err != nil {
			return err
		}
		if n, err = io.CopyBuffer(w, r, make([]byte, 256<<10)); err != nil {
			return err
		}
		return w.Close()
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
