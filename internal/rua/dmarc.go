package rua

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"
)

// Aggregate is a DMARC aggregate report (RFC 7489 appendix C; RFC 9990
// keeps the element names and adds a namespace, which is ignored here).
type Aggregate struct {
	Metadata struct {
		OrgName   string `xml:"org_name"`
		Email     string `xml:"email"`
		ReportID  string `xml:"report_id"`
		DateRange struct {
			Begin int64 `xml:"begin"`
			End   int64 `xml:"end"`
		} `xml:"date_range"`
		Errors []string `xml:"error"`
	} `xml:"report_metadata"`
	Policy struct {
		Domain string `xml:"domain"`
		ADKIM  string `xml:"adkim"`
		ASPF   string `xml:"aspf"`
		P      string `xml:"p"`
		SP     string `xml:"sp"`
		NP     string `xml:"np"`
	} `xml:"policy_published"`
	Records []Record `xml:"record"`
}

// Record is one row: a source address and what was seen from it.
type Record struct {
	Row struct {
		SourceIP  string `xml:"source_ip"`
		Count     int64  `xml:"count"`
		Evaluated struct {
			Disposition string `xml:"disposition"`
			DKIM        string `xml:"dkim"`
			SPF         string `xml:"spf"`
		} `xml:"policy_evaluated"`
	} `xml:"row"`
	Identifiers struct {
		EnvelopeFrom string `xml:"envelope_from"`
		HeaderFrom   string `xml:"header_from"`
	} `xml:"identifiers"`
	Auth struct {
		DKIM []struct {
			Domain   string `xml:"domain"`
			Selector string `xml:"selector"`
			Result   string `xml:"result"`
		} `xml:"dkim"`
		SPF []struct {
			Domain string `xml:"domain"`
			Result string `xml:"result"`
		} `xml:"spf"`
	} `xml:"auth_results"`
}

// ParseAggregate reads a DMARC aggregate report (plain, gzip or zip).
func ParseAggregate(data []byte) (*Aggregate, error) {
	b, err := Unpack(data)
	if err != nil {
		return nil, err
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	// No DTDs or entities in reports: Go's decoder expands none but the
	// five predefined ones, so there is no entity expansion to bound.
	var a struct {
		XMLName xml.Name
		Aggregate
	}
	if err := d.Decode(&a); err != nil {
		return nil, fmt.Errorf("DMARC aggregate report: %w", err)
	}
	if a.XMLName.Local != "feedback" {
		return nil, fmt.Errorf("DMARC aggregate report: root element is <%s>, want <feedback>", a.XMLName.Local)
	}
	r := &a.Aggregate
	if r.Policy.Domain == "" {
		return nil, errors.New("DMARC aggregate report: no policy_published domain")
	}
	for i, rec := range r.Records {
		if _, err := netip.ParseAddr(strings.TrimSpace(rec.Row.SourceIP)); err != nil {
			return nil, fmt.Errorf("DMARC aggregate report: record %d: source_ip %q is not an IP address", i+1, rec.Row.SourceIP)
		}
		if rec.Row.Count < 0 {
			return nil, fmt.Errorf("DMARC aggregate report: record %d: negative count", i+1)
		}
	}
	return r, nil
}

// Source sums up what one sending address did for one From domain.
type Source struct {
	IP         string `json:"ip"`
	HeaderFrom string `json:"header_from"`
	Messages   int64  `json:"messages"`
	Pass       int64  `json:"pass"` // DMARC pass: aligned DKIM or SPF
	Fail       int64  `json:"fail"`
	DKIMFail   int64  `json:"dkim_fail"`
	SPFFail    int64  `json:"spf_fail"`
	Fix        string `json:"fix,omitempty"`
}

// Period is the report's date range.
func (a *Aggregate) Period() (time.Time, time.Time) {
	return time.Unix(a.Metadata.DateRange.Begin, 0).UTC(), time.Unix(a.Metadata.DateRange.End, 0).UTC()
}

// Sources sums the reports per source address and From domain, most
// failing first.
func Sources(reports ...*Aggregate) []Source {
	by := map[[2]string]*Source{}
	for _, r := range reports {
		for _, rec := range r.Records {
			hf := strings.ToLower(rec.Identifiers.HeaderFrom)
			if hf == "" {
				hf = strings.ToLower(r.Policy.Domain)
			}
			k := [2]string{strings.TrimSpace(rec.Row.SourceIP), hf}
			s := by[k]
			if s == nil {
				s = &Source{IP: k[0], HeaderFrom: hf}
				by[k] = s
			}
			n := rec.Row.Count
			s.Messages += n
			dkim := strings.EqualFold(rec.Row.Evaluated.DKIM, "pass")
			spf := strings.EqualFold(rec.Row.Evaluated.SPF, "pass")
			if dkim || spf {
				s.Pass += n
			} else {
				s.Fail += n
			}
			if !dkim {
				s.DKIMFail += n
			}
			if !spf {
				s.SPFFail += n
			}
		}
	}
	out := make([]Source, 0, len(by))
	for _, s := range by {
		s.Fix = fix(s)
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Fail != out[j].Fail {
			return out[i].Fail > out[j].Fail
		}
		if out[i].Messages != out[j].Messages {
			return out[i].Messages > out[j].Messages
		}
		return out[i].IP+out[i].HeaderFrom < out[j].IP+out[j].HeaderFrom
	})
	return out
}

// fix says what to do about a source, by RFC 7489 §3.1 alignment.
func fix(s *Source) string {
	switch {
	case s.Fail == 0 && s.DKIMFail == 0:
		return ""
	case s.Fail == 0:
		return "passes by SPF alone: sign its mail with DKIM for " + s.HeaderFrom + " so that forwarding does not break it"
	case s.Pass > 0:
		return "fails for part of its mail: check every server at this address signs with DKIM for " + s.HeaderFrom
	}
	return "fails DMARC: if this is a service sending for you, sign with DKIM for " + s.HeaderFrom + " or add it to the SPF record; otherwise it is someone else using your domain"
}
