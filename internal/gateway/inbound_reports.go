package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"

	"sealpost/internal/config"
	"sealpost/internal/dlp"
	"sealpost/internal/fsx"
	"sealpost/internal/queue"
	"sealpost/internal/rua"
)

// Reports addressed to the organisation (inbound.report_addresses): the
// DMARC aggregate and TLS reports in such mail are kept in
// data_dir/reports (one file per report, named by its reporter and id,
// so a report sent twice is kept once) for the console to sum up. The mail
// itself goes through the checks and is delivered like any other.

// reportCollector gathers the reports among a message's files.
type reportCollector struct {
	mu    sync.Mutex
	files map[string][]byte // file name → unpacked report
}

// newReportCollector returns a collector when env is addressed to a
// report address, nil otherwise.
func newReportCollector(cfg *config.Config, env *queue.Envelope) *reportCollector {
	for _, r := range env.Rcpts {
		if cfg.Inbound.IsReportAddress(r) {
			return &reportCollector{files: map[string][]byte{}}
		}
	}
	return nil
}

// file keeps f when it is a report. The walk shows a compressed report
// and its content both; both name the same report, kept once.
func (rc *reportCollector) file(f dlp.File) {
	if len(f.Data) == 0 || len(f.Data) > rua.MaxReport {
		return
	}
	var name string
	var data []byte
	if a, err := rua.ParseAggregate(f.Data); err == nil {
		name = "dmarc-" + reportKey(a.Metadata.OrgName, a.Metadata.ReportID, a.Policy.Domain) + ".xml"
		data, _ = rua.Unpack(f.Data)
	} else if t, err := rua.ParseTLSReport(f.Data); err == nil {
		name = "tls-" + reportKey(t.OrganizationName, t.ReportID, "") + ".json"
		data, _ = rua.Unpack(f.Data)
	}
	if name == "" || data == nil {
		return
	}
	rc.mu.Lock()
	rc.files[name] = data
	rc.mu.Unlock()
}

func reportKey(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// save writes the reports found; a failure is logged, never a reason to
// refuse the mail, which is delivered anyway.
func (g *Gateway) saveReports(cfg *config.Config, id string, rc *reportCollector) {
	if rc == nil {
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if len(rc.files) == 0 {
		return
	}
	dir := cfg.ReportsDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		g.Log.Error("cannot keep reports", "msgid", id, "err", err)
		return
	}
	for name, data := range rc.files {
		if err := fsx.WriteFile(fsx.OS{}, filepath.Join(dir, name), data, 0o600); err != nil {
			g.Log.Error("cannot keep a report", "msgid", id, "err", err)
			continue
		}
		g.Log.Info("report kept", "msgid", id, "file", name)
	}
}
