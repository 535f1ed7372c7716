package console

import (
	"context"
	"net/http"
	"strings"

	"sealpost/internal/dns"
	"sealpost/internal/tlspolicy"
	"sealpost/internal/web"
)

// TLSCheck answers the TLS page: the outbound TLS policy for a domain now
// (`sealpost tls check`), after dropping its cached MTA-STS policy when
// refresh is set (`sealpost tls refresh`). An error names why the policy
// cannot be evaluated (e.g. a smarthost takes all mail).
type TLSCheck func(ctx context.Context, domain string, refresh bool) (*tlspolicy.CheckReport, error)

// validDomain is a loose check that keeps obvious junk out of DNS queries.
func validDomain(d string) bool {
	return d != "" && len(d) <= 253 && !strings.ContainsAny(d, " /@\\\"'<>") && strings.Contains(d, ".")
}

func (s *Service) tlsPage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	data := map[string]any{"Title": "Outbound TLS", "U": u, "CSRF": web.CSRFToken(w, r)}
	domain := dns.Normalise(strings.TrimSpace(r.URL.Query().Get("domain")))
	if domain == "" {
		s.page(w, http.StatusOK, "console_tls.html", data)
		return
	}
	s.tlsAnswer(w, r, data, domain, false)
}

func (s *Service) tlsRefresh(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if !web.CSRFOK(r) {
		s.fail(w, http.StatusForbidden, "This page has expired", "Reload the page and try again.")
		return
	}
	u, ok := s.need(w, r, "admin")
	if !ok {
		return
	}
	domain := dns.Normalise(strings.TrimSpace(r.PostFormValue("domain")))
	data := map[string]any{"Title": "Outbound TLS", "U": u, "CSRF": web.CSRFToken(w, r)}
	if !validDomain(domain) {
		data["Domain"], data["Problem"] = domain, "That is not a domain name: type one like nhs.net."
		s.page(w, http.StatusUnprocessableEntity, "console_tls.html", data)
		return
	}
	if err := s.audit(r, "admin:"+u.Name, "tls.refresh", domain, ""); err != nil {
		s.fail(w, http.StatusServiceUnavailable, "Not done", "The audit log could not be written, so the cached policy was kept. Try again; if it keeps happening, check the gateway's log.")
		return
	}
	s.tlsAnswer(w, r, data, domain, true)
}

func (s *Service) tlsAnswer(w http.ResponseWriter, r *http.Request, data map[string]any, domain string, refresh bool) {
	data["Domain"] = domain
	if !validDomain(domain) {
		data["Problem"] = "That is not a domain name: type one like nhs.net."
		s.page(w, http.StatusUnprocessableEntity, "console_tls.html", data)
		return
	}
	if s.TLSCheck == nil {
		data["Problem"] = "The outbound TLS policy is not in use on this gateway."
		s.page(w, http.StatusOK, "console_tls.html", data)
		return
	}
	rep, err := s.TLSCheck(r.Context(), domain, refresh)
	if err != nil {
		data["Problem"] = err.Error()
		s.page(w, http.StatusOK, "console_tls.html", data)
		return
	}
	data["R"], data["Refreshed"] = rep, refresh
	s.page(w, http.StatusOK, "console_tls.html", data)
}
