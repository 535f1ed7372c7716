package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func zipBytes(t *testing.T, files map[string]string) []byte {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range files {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(data))
	}
	zw.Close()
	return b.Bytes()
}

// TestDLPScanCommand: `sealpost dlp scan --json` on a message with NHS
// numbers in a DOCX inside a ZIP gives the INTERFACE.md shape, with a custom
// detector from the config.
func TestDLPScanCommand(t *testing.T) {
	dir := t.TempDir()
	docx := zipBytes(t, map[string]string{
		"[Content_Types].xml": `<Types/>`,
		"word/document.xml":   `<w:document xmlns:w="x"><w:body><w:p><w:r><w:t>NHS no. 943 476 5919 and NHS no. 401 023 2137</w:t></w:r></w:p><w:p><w:r><w:t>Project Falcon</w:t></w:r></w:p></w:body></w:document>`,
	})
	archive := zipBytes(t, map[string]string{"report.docx": string(docx)})
	msg := "From: staff@example.gov.uk\r\nTo: x@partner.example\r\nSubject: OFFICIAL-SENSITIVE PERSONAL referrals\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b\r\nContent-Type: application/zip\r\nContent-Disposition: attachment; filename=report.zip\r\nContent-Transfer-Encoding: base64\r\n\r\n" + base64.StdEncoding.EncodeToString(archive) + "\r\n--b--\r\n"
	os.WriteFile(filepath.Join(dir, "a.eml"), []byte(msg), 0o600)
	os.WriteFile(filepath.Join(dir, "plain.txt"), []byte("Nothing to see: call 0161 496 0000."), 0o600)
	cfg := filepath.Join(dir, "sp.toml")
	os.WriteFile(cfg, []byte(`data_dir = "`+dir+`/data"
[org]
domains = ["example.gov.uk"]
mail_host = "127.0.0.1:2526"
[[dlp.custom]]
name = "project-falcon"
keywords = ["Project Falcon"]
`), 0o600)
	out, err := exec.Command(binPath, "dlp", "scan", "--json", "--config", cfg, filepath.Join(dir, "a.eml"), filepath.Join(dir, "plain.txt")).Output()
	if err != nil {
		t.Fatalf("dlp scan: %v\n%s", err, out)
	}
	var res struct {
		Files []struct {
			File           string `json:"file"`
			Classification string `json:"classification"`
			Findings       []struct {
				Detector   string `json:"detector"`
				Count      int    `json:"count"`
				Confidence string `json:"confidence"`
				Where      string `json:"where"`
			} `json:"findings"`
		} `json:"files"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Files) != 2 {
		t.Fatalf("%v\n%s", err, out)
	}
	f := res.Files[0]
	if f.Classification != "OFFICIAL-SENSITIVE" {
		t.Fatalf("classification %q", f.Classification)
	}
	got := map[string]string{}
	for _, x := range f.Findings {
		got[x.Detector] = x.Where + "/" + x.Confidence + "/" + string(rune('0'+x.Count))
	}
	if got["uk-nhs-number"] != "attachment:report.zip/report.docx/high/2" || got["project-falcon"] != "attachment:report.zip/report.docx/high/1" {
		t.Fatalf("findings %v\n%s", got, out)
	}
	if len(res.Files[1].Findings) != 0 {
		t.Fatalf("decoy file has findings: %s", out)
	}
	// The human form, and bad input.
	text, _ := exec.Command(binPath, "dlp", "scan", "--config", cfg, filepath.Join(dir, "a.eml")).Output()
	if !strings.Contains(string(text), "uk-nhs-number") || !strings.Contains(string(text), "OFFICIAL-SENSITIVE") {
		t.Fatalf("text output:\n%s", text)
	}
	cmd := exec.Command(binPath, "dlp", "scan", "--config", cfg, filepath.Join(dir, "missing.eml"))
	if err := cmd.Run(); err == nil {
		t.Fatal("missing file: exit 0")
	}
}

// TestDLPInfoCommand: `sealpost dlp info` names the detectors and the
// date of the Vocalink tables; dlp.vocalink_valacdos_file loads a newer
// published table without a rebuild, and a file that is no table is a
// config error naming the key.
func TestDLPInfoCommand(t *testing.T) {
	out, err := exec.Command(binPath, "dlp", "info").Output()
	if err != nil || !strings.Contains(string(out), "built in, dated 2023-05-30") || !strings.Contains(string(out), "uk-nhs-number") {
		t.Fatalf("%v\n%s", err, out)
	}
	dir := t.TempDir()
	table, err := os.ReadFile("../internal/dlp/vocalink/valacdos.txt") // the corpus's copy of Vocalink's table
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "valacdos.txt")
	os.WriteFile(file, table, 0o644)
	when := time.Date(2026, 10, 5, 9, 0, 0, 0, time.UTC)
	os.Chtimes(file, when, when)
	cfg := filepath.Join(dir, "sp.toml")
	write := func(valacdos string) {
		os.WriteFile(cfg, []byte(`data_dir = "`+dir+`/data"
[org]
domains = ["example.gov.uk"]
mail_host = "127.0.0.1:2526"
[dlp]
vocalink_valacdos_file = "`+valacdos+`"
`), 0o600)
	}
	write(file)
	out, err = exec.Command(binPath, "dlp", "info", "--json", "--config", cfg).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var info struct {
		Detectors []string `json:"detectors"`
		Vocalink  struct {
			Source, Date string
			Ranges       int
		} `json:"vocalink_modulus_tables"`
	}
	if err := json.Unmarshal(out, &info); err != nil || info.Vocalink.Source != file || info.Vocalink.Date != "2026-10-05" || info.Vocalink.Ranges < 1000 || len(info.Detectors) < 11 {
		t.Fatalf("%v %+v\n%s", err, info, out)
	}
	bad := filepath.Join(dir, "bad.txt")
	os.WriteFile(bad, []byte("not a table\n"), 0o644)
	write(bad)
	cmd := exec.Command(binPath, "dlp", "info", "--config", cfg)
	msg, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(msg), "dlp.vocalink_valacdos_file") || !strings.Contains(string(msg), "line 1") {
		t.Fatalf("bad table: exit %d\n%s", cmd.ProcessState.ExitCode(), msg)
	}
}
