package console

import (
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sealpost/internal/rua"
)

// maxReports bounds the reports one page reads.
const maxReports = 5000

// ruaPage sums up the DMARC aggregate and TLS reports other mail systems
// sent to inbound.report_addresses: per sending source, how much mail, how
// much passed DMARC, and what to fix; per receiving MX, TLS failures.
func (s *Service) ruaPage(w http.ResponseWriter, r *http.Request) {
	u, ok := s.need(w, r, "admin", "auditor")
	if !ok {
		return
	}
	cfg := s.Config()
	dir := cfg.ReportsDir()
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		s.oops(w, err)
		return
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() > entries[j].Name() })
	var aggs []*rua.Aggregate
	var tls []*rua.TLSReport
	bad := 0
	reporters := map[string]bool{}
	for i, e := range entries {
		if i >= maxReports {
			break
		}
		n := e.Name()
		if e.IsDir() || strings.HasSuffix(n, ".tmp") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			bad++
			continue
		}
		switch {
		case strings.HasPrefix(n, "dmarc-"):
			if a, err := rua.ParseAggregate(b); err == nil {
				aggs = append(aggs, a)
				reporters[a.Metadata.OrgName] = true
			} else {
				bad++
			}
		case strings.HasPrefix(n, "tls-"):
			if t, err := rua.ParseTLSReport(b); err == nil {
				tls = append(tls, t)
				reporters[t.OrganizationName] = true
			} else {
				bad++
			}
		}
	}
	s.page(w, http.StatusOK, "console_rua.html", map[string]any{"Title": "Reports from others", "U": u, "CSRF": "",
		"Addresses": cfg.Inbound.ReportAddresses, "DMARC": rua.Sources(aggs...), "TLS": rua.TLSSources(tls...),
		"Reports": len(aggs) + len(tls), "Reporters": len(reporters), "Unreadable": bad})
}
