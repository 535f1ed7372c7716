// Package dnscheck says what to publish in DNS for each of the
// organisation's mail domains, and compares it with what is published.
//
// Following the GOV.UK guidance on email security (and NCSC's Mail Check):
//
//   - MX: the gateway receives the domain's mail.
//   - SPF (RFC 7208): one record, naming the gateway as the sender, ending
//     in "-all" so that other senders fail.
//   - DKIM (RFC 6376): the gateway's public key at selector._domainkey.
//   - DMARC (RFC 7489): a policy of reject (quarantine on the way there;
//     none only while measuring), with aggregate reports to Mail Check.
//   - MTA-STS (RFC 8461): senders must use TLS to the MX; the policy file is
//     served at https://mta-sts.DOMAIN/.well-known/mta-sts.txt.
//   - TLS-RPT (RFC 8460): reports of TLS failures, to Mail Check.
package dnscheck

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"
)

// Settings are the choices behind the records.
type Settings struct {
	Domain      string
	Gateway     string   // the gateway's host name (MX, SPF)
	SPFExtra    []string // other senders' mechanisms, e.g. "include:spf.protection.outlook.com"
	DKIM        []KeyRecord
	DMARCPolicy string // reject, quarantine or none
	DMARCRUA    string // mailto:...
	TLSRPTRUA   string // mailto:...
	MTASTSMode  string // enforce or testing
	MTASTSID    string // changes whenever the policy changes
}

// KeyRecord is a DKIM key's TXT record.
type KeyRecord struct {
	Name  string // selector._domainkey.domain
	Value string
}

// Record is one DNS record to publish.
type Record struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value"`
	Why   string `json:"why"`
}

// Records lists what to publish for s.Domain.
func Records(s Settings) []Record {
	d := s.Domain
	spf := "v=spf1 a:" + s.Gateway
	for _, x := range s.SPFExtra {
		spf += " " + x
	}
	spf += " -all"
	out := []Record{
		{d + ".", "MX", "10 " + s.Gateway + ".", "mail for " + d + " comes to the gateway, which checks it and passes it on"},
		{d + ".", "TXT", spf, "SPF: the gateway sends " + d + "'s mail; anyone else fails"},
	}
	for _, k := range s.DKIM {
		out = append(out, Record{k.Name + ".", "TXT", k.Value, "DKIM: the key that signs " + d + "'s outbound mail"})
	}
	out = append(out,
		Record{"_dmarc." + d + ".", "TXT", "v=DMARC1; p=" + s.DMARCPolicy + "; rua=" + s.DMARCRUA, "DMARC: what receivers do with mail that fails SPF and DKIM, and where they report"},
		Record{"_mta-sts." + d + ".", "TXT", "v=STSv1; id=" + s.MTASTSID, "MTA-STS: senders must use verified TLS to the MX (policy at https://mta-sts." + d + "/.well-known/mta-sts.txt)"},
		Record{"mta-sts." + d + ".", "CNAME", s.Gateway + ".", "MTA-STS: the host that serves the policy file over HTTPS (the gateway's web listener behind a certificate for this name)"},
		Record{"_smtp._tls." + d + ".", "TXT", "v=TLSRPTv1; rua=" + s.TLSRPTRUA, "TLS-RPT: where senders report TLS failures"},
	)
	return out
}

// MTASTSPolicy is the policy file for the MX hosts.
func MTASTSPolicy(mode string, mx []string) string {
	var b strings.Builder
	b.WriteString("version: STSv1\r\nmode: " + mode + "\r\n")
	for _, m := range mx {
		b.WriteString("mx: " + m + "\r\n")
	}
	b.WriteString("max_age: 1209600\r\n")
	return b.String()
}

// Resolver is what Check needs of DNS.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
}

// Finding is the verdict on one record.
type Finding struct {
	Name   string `json:"name"`
	Status string `json:"status"` // ok, missing, wrong, weak; error: could not query (the resolver failed)
	Found  string `json:"found,omitempty"`
	Fix    string `json:"fix,omitempty"`
}

// StatusError is the status of a record that could not be queried: the
// resolver failed (SERVFAIL, REFUSED, a timeout), so nothing is known about
// it. It is never reported as missing: a record is missing only when DNS
// answers that there is none (NXDOMAIN, or no record of the type).
const StatusError = "error"

// notFound says whether err is DNS's answer that the name or record does
// not exist, as opposed to a failure to get an answer.
func notFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}

// couldNotQuery is the advice for a lookup that failed.
func couldNotQuery(name, typ string, err error) string {
	return fmt.Sprintf("could not query %s %s (%v): check that the resolver (--resolver, outbound.resolver or the system's) answers, and that the domain's name servers do; then run the check again", name, typ, err)
}

// Check compares what is published for s.Domain with Records(s).
func Check(ctx context.Context, r Resolver, s Settings) []Finding {
	d := s.Domain
	var out []Finding
	add := func(name, status, found, fix string) {
		out = append(out, Finding{Name: name, Status: status, Found: found, Fix: fix})
	}
	txt := func(name, prefix string) ([]string, error) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		all, err := r.LookupTXT(ctx, name)
		if notFound(err) {
			return nil, nil
		}
		var match []string
		for _, t := range all {
			if strings.HasPrefix(strings.ToLower(strings.TrimSpace(t)), strings.ToLower(prefix)) {
				match = append(match, t)
			}
		}
		return match, err
	}
	// MX
	mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	mxs, err := r.LookupMX(mctx, d)
	cancel()
	var hosts []string
	for _, m := range mxs {
		hosts = append(hosts, strings.TrimSuffix(strings.ToLower(m.Host), "."))
	}
	sort.Strings(hosts)
	switch {
	case err != nil && len(mxs) == 0 && !notFound(err):
		add(d+" MX", StatusError, "", couldNotQuery(d, "MX", err))
	case len(mxs) == 0:
		add(d+" MX", "missing", "", fmt.Sprintf("publish %s MX 10 %s.", d, s.Gateway))
	case !contains(hosts, strings.ToLower(s.Gateway)):
		add(d+" MX", "wrong", strings.Join(hosts, ", "), fmt.Sprintf("mail for %s does not come through the gateway: point the MX at %s", d, s.Gateway))
	default:
		add(d+" MX", "ok", strings.Join(hosts, ", "), "")
	}
	// SPF
	spf, err := txt(d, "v=spf1")
	switch {
	case err != nil:
		add(d+" SPF", StatusError, "", couldNotQuery(d, "TXT", err))
	case len(spf) == 0:
		add(d+" SPF", "missing", "", fmt.Sprintf("publish %s TXT \"%s\"", d, Records(s)[1].Value))
	case len(spf) > 1:
		add(d+" SPF", "wrong", strings.Join(spf, " | "), "there must be exactly one SPF record (RFC 7208 §4.5): merge them")
	case !strings.Contains(" "+strings.ToLower(spf[0])+" ", " a:"+strings.ToLower(s.Gateway)+" ") && !strings.Contains(strings.ToLower(spf[0]), strings.ToLower(s.Gateway)):
		add(d+" SPF", "wrong", spf[0], "the gateway "+s.Gateway+" is not an allowed sender: add a:"+s.Gateway)
	case !strings.HasSuffix(strings.TrimSpace(spf[0]), "-all"):
		add(d+" SPF", "weak", spf[0], "end the record with -all so that other senders fail (GOV.UK guidance)")
	default:
		add(d+" SPF", "ok", spf[0], "")
	}
	// DKIM
	for _, k := range s.DKIM {
		got, err := txt(k.Name, "v=DKIM1")
		switch {
		case err != nil:
			add(k.Name+" DKIM", StatusError, "", couldNotQuery(k.Name, "TXT", err))
		case len(got) == 0:
			add(k.Name+" DKIM", "missing", "", fmt.Sprintf("publish %s TXT \"%s\"", k.Name, k.Value))
		case pValue(strings.Join(got, "")) != pValue(k.Value):
			add(k.Name+" DKIM", "wrong", truncate(got[0], 60), "the published key is not the gateway's: publish "+k.Value)
		default:
			add(k.Name+" DKIM", "ok", truncate(got[0], 60), "")
		}
	}
	// DMARC
	dm, err := txt("_dmarc."+d, "v=DMARC1")
	switch {
	case err != nil:
		add("_dmarc."+d, StatusError, "", couldNotQuery("_dmarc."+d, "TXT", err))
	case len(dm) == 0:
		add("_dmarc."+d, "missing", "", fmt.Sprintf("publish _dmarc.%s TXT \"v=DMARC1; p=%s; rua=%s\"", d, s.DMARCPolicy, s.DMARCRUA))
	default:
		tags := tagMap(dm[0])
		switch {
		case tags["p"] == "none" || tags["p"] == "":
			add("_dmarc."+d, "weak", dm[0], "p=none only monitors: move to p=quarantine, then p=reject (GOV.UK guidance)")
		case s.DMARCRUA != "" && !strings.Contains(tags["rua"], strings.TrimPrefix(s.DMARCRUA, "mailto:")):
			add("_dmarc."+d, "weak", dm[0], "send aggregate reports to "+s.DMARCRUA+" (rua=)")
		default:
			add("_dmarc."+d, "ok", dm[0], "")
		}
	}
	// MTA-STS
	sts, err := txt("_mta-sts."+d, "v=STSv1")
	if err != nil {
		add("_mta-sts."+d, StatusError, "", couldNotQuery("_mta-sts."+d, "TXT", err))
	} else if len(sts) == 0 || tagMap(sts[0])["id"] == "" {
		add("_mta-sts."+d, "missing", strings.Join(sts, ""), fmt.Sprintf("publish _mta-sts.%s TXT \"v=STSv1; id=%s\" and serve the policy at https://mta-sts.%s/.well-known/mta-sts.txt", d, s.MTASTSID, d))
	} else {
		add("_mta-sts."+d, "ok", sts[0], "")
	}
	// TLS-RPT
	rpt, err := txt("_smtp._tls."+d, "v=TLSRPTv1")
	if err != nil {
		add("_smtp._tls."+d, StatusError, "", couldNotQuery("_smtp._tls."+d, "TXT", err))
	} else if len(rpt) == 0 {
		add("_smtp._tls."+d, "missing", "", fmt.Sprintf("publish _smtp._tls.%s TXT \"v=TLSRPTv1; rua=%s\"", d, s.TLSRPTRUA))
	} else {
		add("_smtp._tls."+d, "ok", rpt[0], "")
	}
	return out
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func tagMap(rec string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(rec, ";") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if ok {
			m[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	return m
}

func pValue(rec string) string {
	return strings.Join(strings.Fields(tagMap(rec)["p"]), "")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
