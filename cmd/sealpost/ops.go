package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"sealpost/internal/datadir"
	"sealpost/internal/gateway"
	"sealpost/internal/ops"
)

// withOps runs f with the operations on the configured data directory.
// While `serve` runs it holds the directory's lock, and f goes through the
// gateway's control socket, so the gateway itself releases, deletes or
// retries (spool bytes, metrics and workers stay right). Otherwise this
// command takes the lock for the duration and does the operation itself;
// running reports which.
func withOps(g *globalFlags, f func(ctx context.Context, op ops.Operator, a ops.Actor, running bool) error) error {
	cfg, err := g.loadConfig()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a := ops.Actor{Name: operatorName()}
	off, err := gateway.OpenOffline(cfg, log)
	var inUse *datadir.InUseError
	switch {
	case errors.As(err, &inUse):
		c := ops.NewClient(cfg.Path(ops.ControlSocket))
		if err := waitControl(ctx, c); err != nil {
			return fmt.Errorf("%v, and its control socket %s does not answer (%v); stop that process, or retry once it has started", inUse, c.Path, err)
		}
		return f(ctx, c, a, true)
	case err != nil:
		return err
	}
	defer off.Close()
	return f(ctx, off.Ops, a, false)
}

// waitControl gives a gateway that is starting a few seconds to open its
// control socket (it takes the lock first).
func waitControl(ctx context.Context, c *ops.Client) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Ping(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}
