// Package web serves sealpost's HTTP listener: metrics for Prometheus, a
// health check, and in dev mode the dev outbox. The portal and the console
// mount here too.
//
// Every response carries the same protective headers: a strict
// Content-Security-Policy (no scripts, nothing from other origins, no
// framing), nosniff, no referrer, and no caching of pages.
package web

import (
	"context"
	"crypto/tls"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sealpost/internal/config"
	"sealpost/internal/metrics"
	"sealpost/internal/queue"
	"sealpost/internal/store"
)

//go:embed static templates
var assets embed.FS

var templates = template.Must(template.New("").Funcs(template.FuncMap{
	"ts": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"dict": func(kv ...any) map[string]any {
		m := map[string]any{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}).ParseFS(assets, "templates/*.html"))

// Server is the HTTP listener.
type Server struct {
	OrgName string
	Metrics *metrics.Metrics
	Outbox  *queue.DevOutbox // nil unless dev mode
	// Mail reads captured messages for the dev outbox pages (the portal's
	// MIME walk and HTML policy); nil: only the source is shown.
	Mail  MailReader
	Log   *slog.Logger
	Store *store.Store
	Holds Holds // hold pages; nil: none
	// Brand returns the header colour and the logo (PNG, nil for none).
	Brand func() (colour string, logo []byte)
	// MTASTS returns the MTA-STS policy file (nil: not served).
	MTASTS func() string
	// Mount adds more routes (the portal) to the mux.
	Mount func(mux *http.ServeMux)
	// Config is the configuration in force (trusted proxies, metrics
	// networks, public URL); nil: none of these (tests).
	Config func() *config.Config
	// TokenOK reports whether a request carries a valid API token, which
	// also opens /metrics and /api/openapi.json.
	TokenOK func(r *http.Request) bool
	// Certs, when set, makes the listener speak HTTPS with them.
	Certs *Certificates
	// TicketRotation is how often TLS session-ticket keys change (0: daily).
	TicketRotation time.Duration

	ticketTick    <-chan time.Time // tests: rotate on these ticks instead
	srv, redirect *http.Server
	stop          context.CancelFunc
	bg            sync.WaitGroup
}

// Handler returns the HTTP handler with all routes and headers.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", s.fromNetworks(promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{})))
	mux.HandleFunc("GET /healthz", s.health)
	mux.Handle("GET /static/", http.FileServerFS(assets))
	mux.HandleFunc("GET /{$}", s.home)
	if s.Outbox != nil {
		mux.HandleFunc("GET /dev/outbox", s.outboxList)
		mux.HandleFunc("GET /dev/outbox/{seq}", s.outboxShow)
		mux.HandleFunc("GET /dev/outbox/{seq}/source", s.outboxSource)
		mux.HandleFunc("GET /dev/outbox/{seq}/raw", s.outboxRaw)
		mux.HandleFunc("GET /dev/outbox/{seq}/body", s.outboxBody)
		mux.HandleFunc("GET /dev/outbox/{seq}/attachment/{n}", s.outboxAttachment)
	}
	if s.Holds != nil {
		mux.HandleFunc("GET /hold/{id}", s.holdPage)
		mux.HandleFunc("POST /hold/{id}", s.holdPost)
	}
	mux.HandleFunc("GET /brand.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "public, max-age=300")
		if s.Brand == nil {
			return
		}
		colour, logo := s.Brand()
		fmt.Fprintf(w, ":root { --brand: %s; }\nheader { background: var(--brand); }\n", colour)
		if logo != nil {
			io.WriteString(w, "header .org { padding-left: 3rem; background: url(/brand/logo.png) no-repeat left center / 2.5rem auto; }\n")
		}
	})
	mux.HandleFunc("GET /brand/logo.png", func(w http.ResponseWriter, r *http.Request) {
		var logo []byte
		if s.Brand != nil {
			_, logo = s.Brand()
		}
		if logo == nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "image/png")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(logo)
	})
	if s.MTASTS != nil {
		mux.HandleFunc("GET /.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, s.MTASTS())
		})
	}
	if s.Mount != nil {
		s.Mount(mux)
	}
	mux.HandleFunc("/", s.notFound)
	return withClient(s.Config, secureHeaders(s.restricted(mux)))
}

func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.errorPage(w, http.StatusNotFound, "Page not found", "There is no page at this address. Check the link, or start again from the home page.")
}

// restricted sends what only monitoring may read through fromNetworks,
// and the console and API through web.console_networks when it is set,
// whichever package mounted them.
func (s *Server) restricted(mux *http.ServeMux) http.Handler {
	gated := s.fromNetworks(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		if p == "/api/openapi.json" {
			gated.ServeHTTP(w, r)
			return
		}
		if (p == "/console" || strings.HasPrefix(p, "/console/") || strings.HasPrefix(p, "/api/")) && !s.consoleAllowed(r) {
			s.notFound(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Server) consoleAllowed(r *http.Request) bool {
	if s.Config == nil {
		return true
	}
	nets := s.Config().Web.ConsoleNets
	ip := ClientOf(r).IP
	return len(nets) == 0 || ip.IsValid() && config.InNets(nets, ip)
}

func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Cross-Origin-Resource-Policy", "same-origin")
		hd.Set("Cache-Control", "no-store")
		if Secure(r) {
			// RFC 6797: browsers ignore it over plain HTTP, so it is sent
			// whenever the portal's public address is https, whatever the
			// last hop (a TLS-terminating proxy) speaks.
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// Serve starts listening on addr in the background: HTTPS when Certs is
// set, else plain HTTP.
func (s *Server) Serve(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.stop = cancel
	s.srv = s.httpServer(s.Handler())
	if s.Certs != nil {
		tc := TLSConfig(s.Certs)
		tick := s.ticketTick
		if tick == nil {
			period := s.TicketRotation
			if period <= 0 {
				period = 24 * time.Hour
			}
			t := time.NewTicker(period)
			s.bg.Add(1)
			go func() {
				defer s.bg.Done()
				<-ctx.Done()
				t.Stop()
			}()
			tick = t.C
		}
		if err := rotateTickets(ctx, &s.bg, tc, tick); err != nil {
			l.Close()
			return nil, err
		}
		// Our own TLS listener rather than ServeTLS, which would copy tc
		// and so never see the rotated ticket keys.
		l = tls.NewListener(l, tc)
	}
	go func() {
		if err := s.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("web listener stopped", "err", err)
		}
	}()
	return l.Addr(), nil
}

func (s *Server) httpServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 5 * time.Minute,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.Log.Handler(), slog.LevelWarn),
	}
}

// ServeRedirect starts a plain-HTTP listener on addr that answers every
// request with a redirect to the same path under base (the public URL;
// never the request's Host, which the client chooses).
func (s *Server) ServeRedirect(addr, base string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.redirect = s.httpServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		target := base + r.URL.EscapedPath()
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	}))
	go func() {
		if err := s.redirect.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.Log.Error("redirect listener stopped", "err", err)
		}
	}()
	return l.Addr(), nil
}

// Shutdown stops the listeners, waiting for requests up to ctx.
func (s *Server) Shutdown(ctx context.Context) {
	if s.redirect != nil {
		s.redirect.Shutdown(ctx)
	}
	if s.srv != nil {
		s.srv.Shutdown(ctx)
	}
	if s.stop != nil {
		s.stop()
	}
	s.bg.Wait()
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := templates.ExecuteTemplate(w, name, data); err != nil {
		s.Log.Error("rendering page failed", "page", name, "err", err)
	}
}

// Render writes page name of the shared templates with data.
func Render(w http.ResponseWriter, status int, name string, data map[string]any) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	return templates.ExecuteTemplate(w, name, data)
}

// ErrorPage writes a page that says what went wrong and what to do next.
func ErrorPage(w http.ResponseWriter, org string, status int, title, advice string) {
	Render(w, status, "error.html", map[string]any{"Org": org, "Title": title, "Advice": advice, "Status": status})
}

func (s *Server) errorPage(w http.ResponseWriter, status int, title, advice string) {
	s.render(w, status, "error.html", map[string]any{"Org": s.OrgName, "Title": title, "Advice": advice, "Status": status})
}

func (s *Server) health(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.Store.DB.PingContext(ctx); err != nil {
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	io.WriteString(w, "ok\n")
}

func (s *Server) home(w http.ResponseWriter, r *http.Request) {
	s.render(w, http.StatusOK, "home.html", map[string]any{"Org": s.OrgName, "Dev": s.Outbox != nil})
}
