package queue

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

// createFile makes the file for message id: an unnamed O_TMPFILE inode in
// q/ when the file system supports it, else a named file in tmp/.
func (s *Spool) createFile(id string) (*os.File, bool, error) {
	if !s.noTmpfile.Load() {
		fd, err := unix.Open(filepath.Join(s.dir, "q"), unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return os.NewFile(uintptr(fd), filepath.Join(s.dir, "q", "(unnamed "+id+")")), true, nil
		}
		if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL) {
			s.noTmpfile.Store(true)
		} else {
			return nil, false, err
		}
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "tmp", id), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	return f, false, err
}

// linkTmpfile gives an O_TMPFILE inode its name. linkat through
// /proc/self/fd needs no privilege (AT_EMPTY_PATH would need
// CAP_DAC_READ_SEARCH).
func linkTmpfile(f *os.File, path string) error {
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(int(f.Fd())), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
}
