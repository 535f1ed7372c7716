package dlp

import (
	"archive/zip"
	"bufio"
	"fmt"
	"html"
	"os"
	"sort"
	"strings"
	"testing"
)

type evalCase struct{ det, text string }

func loadEval(t *testing.T) []evalCase {
	f, err := os.Open("testdata/eval/cases.tsv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []evalCase
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		det, text, ok := strings.Cut(l, "\t")
		if !ok {
			t.Fatalf("bad line %q", l)
		}
		if det == "-" {
			det = ""
		}
		out = append(out, evalCase{det, text})
	}
	return out
}

// evalCarriers put one line of text where mail carries it: the body, an
// HTML part, and CSV, DOCX, PDF and zipped text attachments.
func evalCarriers(t *testing.T, text string) map[string]string {
	part := func(ct, name string, data []byte) string {
		return "Content-Type: " + ct + "\r\nContent-Disposition: attachment; filename=\"" + name + "\"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + b64lines(data)
	}
	intro := "Content-Type: text/plain; charset=utf-8\r\n\r\nPlease see the attached, thanks.\r\n"
	return map[string]string{
		"body": message("update", "Content-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\n"+text+"\r\nKind regards\r\n"),
		"html": message("update", "Content-Type: text/html; charset=utf-8\r\n\r\n<p>Hello,</p><p>"+html.EscapeString(text)+"</p><p>Kind regards</p>\r\n"),
		"csv":  message("update", intro, part("text/csv", "list.csv", []byte("id,detail\r\n1,\""+text+"\"\r\n"))),
		"docx": message("update", intro, part("application/vnd.openxmlformats-officedocument.wordprocessingml.document", "letter.docx", docx(t, "Dear colleague,", text))),
		"pdf":  message("update", intro, part("application/pdf", "letter.pdf", onePagePDF(t, text))),
		"zip":  message("update", intro, part("application/zip", "notes.zip", zipOf(t, map[string][]byte{"notes.txt": []byte(text + "\n")}, zip.Deflate))),
	}
}

// TestEvaluationSet: precision and recall per detector and carrier on a
// set written independently of the validators (testdata/eval/README.md).
// Medium and high findings count; low ones hold nothing in the built-in
// policy and do not.
func TestEvaluationSet(t *testing.T) {
	cases := loadEval(t)
	e, _ := NewEngine(nil, DefaultLimits)
	type key struct{ det, carrier string }
	stats := map[key]*tally{}
	get := func(k key) *tally {
		if stats[k] == nil {
			stats[k] = &tally{}
		}
		return stats[k]
	}
	for _, c := range cases {
		for carrier, msg := range evalCarriers(t, c.text) {
			r, err := e.ScanMessage(strings.NewReader(msg))
			if err != nil {
				t.Fatal(err)
			}
			found := map[string]bool{}
			for _, f := range r.Findings {
				if f.Confidence != "low" {
					found[f.Detector] = true
				}
			}
			if c.det != "" {
				if found[c.det] {
					get(key{c.det, carrier}).tp++
				} else {
					get(key{c.det, carrier}).fn++
					t.Logf("%s: missed %s in %q (%s)", carrier, c.det, c.text, findings(r))
				}
			}
			for d := range found {
				if d != c.det {
					get(key{d, carrier}).fp++
					t.Logf("%s: false %s in %q", carrier, d, c.text)
				}
			}
		}
	}
	var keys []key
	for k := range stats {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].det != keys[j].det {
			return keys[i].det < keys[j].det
		}
		return keys[i].carrier < keys[j].carrier
	})
	var report strings.Builder
	fmt.Fprintf(&report, "%-22s %-5s %4s %4s %4s %9s %6s\n", "detector", "via", "tp", "fp", "fn", "precision", "recall")
	for _, k := range keys {
		s := stats[k]
		p := float64(s.tp) / float64(max(1, s.tp+s.fp))
		rc := float64(s.tp) / float64(max(1, s.tp+s.fn))
		fmt.Fprintf(&report, "%-22s %-5s %4d %4d %4d %9.3f %6.3f\n", k.det, k.carrier, s.tp, s.fp, s.fn, p, rc)
		if p < 0.99 || rc < 0.99 {
			t.Errorf("%s via %s: precision %.3f, recall %.3f; want both at least 0.99", k.det, k.carrier, p, rc)
		}
	}
	t.Logf("%d cases × 6 carriers\n%s", len(cases), report.String())
}
