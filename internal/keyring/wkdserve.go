package keyring

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// WKDHandler serves the staff keys of the organisation's domains as a Web
// Key Directory (draft-koch-openpgp-webkey-service §3.1), by both methods:
//
//	GET /.well-known/openpgpkey/<domain>/hu/<hash>   advanced (Host openpgpkey.<domain>)
//	GET /.well-known/openpgpkey/hu/<hash>            direct (Host <domain>)
//	GET /.well-known/openpgpkey[/<domain>]/policy    the policy file (§4.5), empty
//
// The answer is the binary certificate(s) of the usable staff keys whose
// address has that hashed local part (404 when none); a key reaches it
// only through `sealpost keys add --staff`.
type WKDHandler struct {
	Keyring *Keyring
	// IsOrgDomain says which domains this directory answers for.
	IsOrgDomain func(domain string) bool
	Log         *slog.Logger
}

// Mount registers the routes on mux (one pattern: the two methods'
// paths overlap, which ServeMux patterns cannot tell apart).
func (h *WKDHandler) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /.well-known/openpgpkey/{rest...}", h.serve)
}

func (h *WKDHandler) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(r.PathValue("rest"), "/")
	switch {
	case len(parts) == 1 && parts[0] == "policy":
		h.policy(w, r, h.domain(r, ""))
	case len(parts) == 2 && parts[0] == "hu":
		h.key(w, r, h.domain(r, ""), parts[1])
	case len(parts) == 2 && parts[1] == "policy":
		h.policy(w, r, h.domain(r, parts[0]))
	case len(parts) == 3 && parts[1] == "hu":
		h.key(w, r, h.domain(r, parts[0]), parts[2])
	default:
		http.NotFound(w, r)
	}
}

// domain is the domain asked about: from the path (advanced method) or
// the Host header (direct method); "" when it is not the organisation's.
func (h *WKDHandler) domain(r *http.Request, fromPath string) string {
	d := fromPath
	if d == "" {
		d = r.Host
		if host, _, err := net.SplitHostPort(d); err == nil {
			d = host
		}
	}
	d = strings.ToLower(strings.TrimSuffix(d, "."))
	if h.IsOrgDomain == nil || !h.IsOrgDomain(d) {
		return ""
	}
	return d
}

func (h *WKDHandler) policy(w http.ResponseWriter, r *http.Request, domain string) {
	if domain == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Access-Control-Allow-Origin", "*")
}

func (h *WKDHandler) key(w http.ResponseWriter, r *http.Request, domain, hash string) {
	if domain == "" || len(hash) != 32 {
		http.NotFound(w, r)
		return
	}
	body, err := h.lookup(r.Context(), domain, hash)
	if err != nil {
		if h.Log != nil {
			h.Log.Error("WKD: reading staff keys", "err", err)
		}
		http.Error(w, "The key directory is unavailable; try again later.", http.StatusServiceUnavailable)
		return
	}
	if len(body) == 0 {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	// §3.1: clients in browsers fetch keys too.
	w.Header().Set("Access-Control-Allow-Origin", "*")
	w.Write(body)
}

func (h *WKDHandler) lookup(ctx context.Context, domain, hash string) ([]byte, error) {
	keys, err := h.Keyring.List(ctx)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	now := h.Keyring.now()
	for _, k := range keys {
		if !k.Staff || k.Kind != KindPGP {
			continue
		}
		for _, a := range k.Addresses {
			i := strings.LastIndexByte(a, '@')
			if i < 0 || a[i+1:] != domain || WKDHash(a[:i]) != hash {
				continue
			}
			if k.Unusable(a, now) == "" {
				out.Write(k.Raw)
			}
			break
		}
	}
	return out.Bytes(), nil
}
