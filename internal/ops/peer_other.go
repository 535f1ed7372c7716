//go:build !linux

package ops

import "net"

// PeerActor names the caller of a control-socket connection; without
// SO_PEERCRED only "cli".
func PeerActor(c net.Conn) string { return "cli" }
