package impersonation

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	names := NewNames([]string{"Jane Smith", "Chief Executive", "IT"}, 0)
	names.Add("Robert Brown") // as learned from outbound mail
	known := map[string]bool{"supplier.co.uk": true, "partner.example": true}
	test := func(from, replyTo string, want ...string) {
		t.Helper()
		fs := Check(Input{From: from, ReplyTo: replyTo, OrgDomains: []string{"example.gov.uk"},
			Correspondents: []string{"supplier.co.uk", "partner.example"}, Names: []*Names{names}, Known: func(d string) bool { return known[d] }})
		var got []string
		for _, f := range fs {
			got = append(got, f.Kind)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("From %q Reply-To %q: got %v %+v, want %v", from, replyTo, got, fs, want)
		}
	}
	// Display names.
	test(`"Jane Smith" <jane@freemail.example>`, "", DisplayName)
	test(`"SMITH, Jane" <js@freemail.example>`, "", DisplayName)
	test(`"Jane Smith (CEO)" <js@freemail.example>`, "", DisplayName)
	test("\"J\u0430ne Smith\" <js@freemail.example>", "", DisplayName) // Cyrillic а
	test(`=?UTF-8?Q?Robert_Brown?= <rb@freemail.example>`, "", DisplayName)
	test(`"jane.smith@example.gov.uk" <x@freemail.example>`, "", DisplayName, DisplayName)
	test(`"IT" <helpdesk@freemail.example>`, "")       // too weak to protect
	test(`"Jane Smith" <jane@example.gov.uk>`, "")     // the organisation's own: DMARC's concern
	test(`"Jane Smith" <jane@hr.example.gov.uk>`, "")  // a subdomain of it
	test(`"Janet Smithers" <js@freemail.example>`, "") // another person
	// Look-alike domains of the organisation and of correspondents.
	test(`a@examp1e.gov.uk`, "", LookAlike)
	test(`a@exampel.gov.uk`, "", LookAlike)
	test(`a@example-gov.uk`, "", LookAlike)
	test(`a@example.gov.uk.invoices.example`, "", LookAlike)
	test(`a@suppiier.co.uk`, "", LookAlike)
	test(`a@supplier.co.uk`, "") // the correspondent itself
	test(`a@xn--exmple-4nf.gov.uk`, "", Homograph, Homograph)
	test(`a@unrelated.example`, "")
	test(`a@exam.gov.uk`, "")
	// Reply-To elsewhere: suspicious from a first-time sender only.
	test(`a@newcomer.example`, `b@elsewhere.example`, ReplyTo)
	test(`a@supplier.co.uk`, `b@elsewhere.example`)
	test(`a@newcomer.example`, `b@newcomer.example`)
	test(`a@newcomer.example`, `b@examp1e.gov.uk`, LookAlike, ReplyTo)
	test(`not an address`, "")
}

func TestSkeleton(t *testing.T) {
	t.Parallel()
	for _, tc := range [][2]string{{"examp1e", "example"}, {"rnicrosoft", "microsoft"}, {"ex\u0430mple", "example"}, {"ＥＸＡＭＰＬＥ", "example"}} {
		if a, b := skeleton(tc[0]), skeleton(tc[1]); a != b {
			t.Errorf("%q → %q, %q → %q", tc[0], a, tc[1], b)
		}
	}
}

// FuzzCheck: no input panics, and a finding always explains itself.
func FuzzCheck(f *testing.F) {
	f.Add(`"Jane Smith" <j@xn--exmple-4nf.gov.uk>`, `x@y.example`)
	f.Add(`=?utf-8?b?SmFuZSBTbWl0aA==?= <a@b>`, ``)
	names := NewNames([]string{"Jane Smith"}, 0)
	f.Fuzz(func(t *testing.T, from, replyTo string) {
		for _, x := range Check(Input{From: from, ReplyTo: replyTo, OrgDomains: []string{"example.gov.uk"}, Names: []*Names{names}}) {
			if x.Kind == "" || x.Reason == "" {
				t.Fatalf("%+v", x)
			}
		}
	})
}
