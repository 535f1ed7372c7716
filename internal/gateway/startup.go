package gateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/ops"
)

// listenError names the config key of a listener that could not be
// opened, so that "address already in use" says which of the three
// listeners clashes (init's defaults are dev mode's: a dev instance that
// runs makes the first start of a real config fail here).
func listenError(cfg *config.Config, key, addr string, err error) error {
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		msg = "address already in use (another program listens there: another sealpost, perhaps `serve --dev`?); choose a free address"
	case errors.Is(err, syscall.EACCES):
		msg = "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)"
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		msg = "this machine has no such address"
	}
	return cfg.KeyError(key, addr+": "+msg)
}

// readable checks that the configured certificate and key files can be
// read, naming the key of the one that cannot.
func readable(cfg *config.Config, certKey, certPath, keyKey, keyPath string) error {
	for _, f := range [][2]string{{certKey, certPath}, {keyKey, keyPath}} {
		if f[1] == "" {
			return cfg.KeyError(f[0], "must be set when "+certKey+" or "+keyKey+" is")
		}
		if _, err := os.ReadFile(f[1]); err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return cfg.KeyError(f[0], fmt.Sprintf("%s: cannot read: %v", f[1], err))
		}
	}
	return nil
}

// serveControl opens the control socket in the data directory, through
// which the command line asks this gateway to release, delete or retry
// mail (see package ops).
func (g *Gateway) serveControl(cfg *config.Config) error {
	path := cfg.Path(ops.ControlSocket)
	// sun_path holds 108 bytes on Linux; a deeper data directory works,
	// only without the socket, and the command line says so.
	if len(path) >= 104 {
		g.Log.Warn("no control socket: the data directory's path is too long for a Unix socket; `sealpost quarantine release` and the like need the gateway stopped", "path", path)
		return nil
	}
	l, err := ops.Listen(path)
	if err != nil {
		return cfg.KeyError("data_dir", fmt.Sprintf("control socket %s: %v", path, err))
	}
	g.control = &http.Server{
		Handler:           ops.ControlHandler(g.Ops),
		ReadHeaderTimeout: 10 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return ops.WithPeer(ctx, ops.PeerActor(c))
		},
	}
	go func() {
		if err := g.control.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.Log.Error("control socket failed", "err", err)
		}
	}()
	return nil
}
