package portal

import (
	"io"
	"os"
	"path/filepath"

	"sealpost/internal/fsx"
	"sealpost/internal/seal"
)

// writeSealed seals r into path durably: into a temporary file beside it,
// fsynced, renamed into place, and the directory fsynced, so that a blob
// the portal's row points to survives a power cut (the row is committed
// after this returns). It returns the plaintext bytes written; on error
// nothing is left at path.
func writeSealed(fsys fsx.FS, path string, key, aad []byte, r io.Reader) (int64, error) {
	tmp := path + ".tmp"
	f, err := fsys.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	var n int64
	w, err := seal.NewWriter(f, key, aad)
	if err == nil {
		n, err = io.CopyBuffer(w, r, make([]byte, 256<<10))
	}
	if err == nil {
		err = w.Close()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fsys.Rename(tmp, path)
	}
	if err != nil {
		fsys.Remove(tmp)
		return 0, err
	}
	if err := fsys.SyncDir(filepath.Dir(path)); err != nil {
		return 0, err
	}
	return n, nil
}
