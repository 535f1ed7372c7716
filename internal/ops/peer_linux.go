package ops

import (
	"net"
	"os/user"
	"strconv"
	"syscall"
)

// PeerActor names the process at the other end of a control-socket
// connection from its user id (SO_PEERCRED): "cli:USER". The name comes
// from the kernel, not from the request, so a caller cannot record
// another user's name in the audit log.
func PeerActor(c net.Conn) string {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return "cli"
	}
	raw, err := uc.SyscallConn()
	if err != nil {
		return "cli"
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return "cli"
	}
	uid := strconv.Itoa(int(cred.Uid))
	if u, err := user.LookupId(uid); err == nil {
		return "cli:" + u.Username
	}
	return "cli:uid " + uid
}
