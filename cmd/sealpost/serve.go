package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"sealpost/internal/auth"
	"sealpost/internal/config"
	"sealpost/internal/gateway"
	"sealpost/internal/sdnotify"
	"sealpost/internal/store"
)

func serveCmd(g *globalFlags) *cobra.Command {
	var cpuProfile string
	var devListen [3]string
	c := newCmd("serve", "Run the gateway: SMTP listeners, delivery, web", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		cfg, err := g.loadConfig()
		if err != nil {
			return err
		}
		if cfg.Dev {
			overrideDevListeners(cfg, devListen)
		}
		if cpuProfile != "" {
			f, err := os.Create(cpuProfile)
			if err != nil {
				return err
			}
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
		logw := gateway.NewLogWriter(os.Stderr, 100*time.Millisecond)
		defer logw.Close()
		log := gateway.NewLogger(cfg, logw)
		// Signals are taken before the start, not after: a SIGHUP (a
		// reload) that arrives while the gateway starts would otherwise
		// kill it. What arrives meanwhile waits here and is handled once
		// the gateway runs.
		sigs := make(chan os.Signal, 4)
		signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
		defer signal.Stop(sigs)
		gw, err := gateway.Start(cfg, log, nil)
		if err != nil {
			logw.Flush()
			return startupError{err}
		}
		logw.Flush()
		if cfg.Dev {
			if err := devFirstAdmin(gw.Store); err != nil {
				log.Error("creating the first admin failed", "err", err)
			}
			fmt.Fprintf(os.Stderr, "\nsealpost dev mode: inbound SMTP %s, outbound SMTP %s, web http://%s (console /console, portal /portal, API /api, dev outbox /dev/outbox)\n\n",
				gw.InboundAddr, gw.OutboundAddr, gw.WebAddr)
		}
		// Under systemd (Type=notify) the unit is "started" only now that
		// the listeners are open; WATCHDOG=1 comes from this loop, so a
		// gateway whose main loop hangs is restarted (WatchdogSec=).
		sd := sdnotify.FromEnv()
		if err := sd.Notify(sdnotify.Ready, "STATUS=accepting mail"); err != nil {
			log.Warn("systemd notification failed", "err", err)
		}
		wd, err := sdnotify.WatchdogInterval()
		if err != nil {
			log.Warn("systemd watchdog ignored", "err", err)
		}
		var tick <-chan time.Time
		if wd > 0 && sd.Enabled() {
			t := time.NewTicker(wd / 2) // sd_watchdog_enabled(3): ping at half the interval
			defer t.Stop()
			tick = t.C
		}
		for {
			var sig os.Signal
			select {
			case <-tick:
				sd.Notify(sdnotify.Watchdog)
				continue
			case sig = <-sigs:
			}
			if sig == syscall.SIGHUP {
				if cfg.File == "" {
					log.Info("SIGHUP: no configuration file to reload")
					continue
				}
				sd.Notify(sdnotify.ReloadingNow(monotonicNow())...)
				ncfg, err := config.Load(cfg.File)
				if err == nil {
					err = gw.Reload(ncfg)
				}
				if err != nil {
					log.Error("reload refused: configuration invalid; keeping the running one", "err", err)
				}
				sd.Notify(sdnotify.Ready)
				continue
			}
			log.Info("stopping: draining SMTP sessions", "signal", sig.String())
			sd.Notify(sdnotify.Stopping)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			go func() {
				<-sigs // a second signal stops at once
				cancel()
			}()
			gw.Shutdown(ctx)
			cancel()
			return nil
		}
	})
	c.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file until stopped (for benchmarks)")
	c.Flags().MarkHidden("cpuprofile")
	// Tests run dev mode on free ports beside other tests; operators use
	// a config file to choose addresses.
	for i, n := range []string{"dev-inbound", "dev-outbound", "dev-web"} {
		c.Flags().StringVar(&devListen[i], n, "", "with --dev: listen here instead (for tests)")
		c.Flags().MarkHidden(n)
	}
	return c
}

// devFirstAdmin creates an admin user on the first dev start and prints its
// password once.
func devFirstAdmin(st *store.Store) error {
	ctx := context.Background()
	users, err := st.Users(ctx)
	if err != nil || len(users) > 0 {
		return err
	}
	pw := randomPassword()
	h, err := auth.HashPassword(pw)
	if err != nil {
		return err
	}
	if err := st.AddUser(ctx, &store.User{Name: "admin", PasswordHash: h, Role: "admin"}); err != nil && !errors.Is(err, store.ErrExists) {
		return err
	}
	fmt.Fprintf(os.Stderr, "\nFirst admin created (shown once): user admin, password %s; sign in at /console\n", pw)
	return nil
}

func randomPassword() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	b := make([]byte, 20)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// startupError is a failure of `serve` to start: like a bad config, exit
// status 2, one line naming the key, file or rule.
type startupError struct{ err error }

func (e startupError) Error() string { return e.err.Error() }
func (e startupError) Unwrap() error { return e.err }

// overrideDevListeners applies the hidden --dev-inbound, --dev-outbound
// and --dev-web flags.
func overrideDevListeners(cfg *config.Config, l [3]string) {
	if l[0] != "" {
		cfg.SMTP.InboundListen = l[0]
	}
	if l[1] != "" {
		cfg.SMTP.OutboundListen = l[1]
	}
	if l[2] != "" {
		cfg.Web.Listen = l[2]
		cfg.Web.PublicURL = "http://" + l[2]
	}
}

// monotonicNow is CLOCK_MONOTONIC, the clock systemd compares
// MONOTONIC_USEC against.
func monotonicNow() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
