package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"sealpost/internal/config"
	"sealpost/internal/store"
	"sealpost/internal/testutil"
)

// swaksSend sends the message in data with swaks (a real SMTP client)
// through the gateway's outbound listener and returns swaks's output.
func swaksSend(t *testing.T, e *env, from, to, data string) string {
	t.Helper()
	if _, err := exec.LookPath("swaks"); err != nil {
		if os.Getenv("SEALPOST_REQUIRE_TOOLS") != "" {
			t.Fatal("swaks is not installed (make test installs it)")
		}
		t.Skip("no swaks")
	}
	file := filepath.Join(t.TempDir(), "answer.eml")
	if err := os.WriteFile(file, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("swaks", "--timeout", "20", "--server", e.gw.OutboundAddr.String(), "--helo", "exchange.example",
		"--from", from, "--to", to, "--data", "@"+file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "<-  250 ") || !strings.Contains(string(out), "queued as") {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	return string(out)
}

// threadSetup seals a message from Alice to Jane and signs Jane in.
func threadSetup(t *testing.T, e *env, subject string) (jane *webClient, landing string, sealed *store.Sealed) {
	t.Helper()
	msg := "From: Alice Staff <staff@example.gov.uk>\r\nTo: Jane Doe <jane@citizen.example>\r\nSubject: [secure] " + subject + "\r\n" +
		"Date: Thu, 26 Nov 2026 08:00:00 +0000\r\nMessage-ID: <orig-" + subject + "@example.gov.uk>\r\nReferences: <earlier@example.gov.uk>\r\n\r\nDear Jane, about your case.\r\n"
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	notice := mailTo(t, e.sink, "jane@citizen.example", "Secure message from Alice Staff", 0)
	landing = "/m/" + linkRe.FindStringSubmatch(decodeQP(notice.Data))[1]
	jane = newBrowser(t, e)
	signIn(t, e, jane, landing, "jane@citizen.example")
	sealed, err := e.gw.Store.SealedByMsg(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return jane, landing, sealed
}

// count returns how many messages of the sink went to rcpt with subj in
// their subject.
func count(e *env, rcpt, subj string) int {
	n := 0
	for _, m := range e.sink.Messages() {
		if len(m.Rcpts) == 1 && m.Rcpts[0] == rcpt && strings.Contains(testutil.Header(m.Data, "Subject"), subj) {
			n++
		}
	}
	return n
}

// TestPortalReplySentOnce: the same reply form posted three times (a
// double click, a reload, the back button) sends one mail; each POST is
// answered 303 to the page that says it was sent. The mail is a person's
// answer threaded to the original.
func TestPortalReplySentOnce(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	jane, landing, sealed := threadSetup(t, e, "Case12")
	// "Sent" is when Alice sent it (its Date), not when it was sealed.
	if st, page := jane.get(landing); st != 200 || !strings.Contains(page, "Reply securely") || !strings.Contains(page, "<dt>Sent</dt><dd>26 November 2026, 08:00 UTC</dd>") {
		t.Fatalf("message page %d:\n%s", st, page)
	}
	csrf := csrfRe.FindStringSubmatch(jane.page)[1]
	form := formRe.FindStringSubmatch(jane.page)[1]
	// The first POST is answered with a redirect to a GET page.
	noRedirect := &http.Client{Jar: jane.c.Jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(multipartReply(t, jane, landing+"/reply", map[string]string{"csrf": csrf, "form": form, "text": "My answer, once."}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != landing+"/sent" {
		t.Fatalf("POST answered %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if st, page := jane.get(landing + "/sent"); st != 200 || !strings.Contains(page, "Your reply was sent securely to Alice Staff.") {
		t.Fatalf("sent page %d:\n%s", st, page)
	}
	// The same form twice more: the same page, nothing sent.
	for i := 2; i <= 3; i++ {
		st, page := jane.postFiles(landing+"/reply", map[string]string{"form": form, "text": "My answer, once."}, nil)
		if st != 200 || !strings.Contains(page, "Your reply was sent securely to Alice Staff.") {
			t.Fatalf("POST %d: %d\n%s", i, st, page)
		}
	}
	r := mailTo(t, e.sink, "staff@example.gov.uk", "Re: Case12", 0)
	waitQueueEmpty(t, e)
	time.Sleep(300 * time.Millisecond)
	if n := count(e, "staff@example.gov.uk", "Re: Case12"); n != 1 {
		t.Fatalf("%d replies reached the mail host, want 1", n)
	}
	if th, _ := e.gw.Store.Thread(context.Background(), sealed.ID); len(th) != 1 {
		t.Fatalf("%d replies sealed into the thread, want 1", len(th))
	}
	// Three at the same moment: one wins, the others find it sent.
	jane.get(landing)
	form2 := formRe.FindStringSubmatch(jane.page)[1]
	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := noRedirect.Do(multipartReply(t, jane, landing+"/reply", map[string]string{"csrf": csrf, "form": form2, "text": "Second answer."}))
			if err == nil {
				codes[i] = resp.StatusCode
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	waitQueueEmpty(t, e)
	time.Sleep(300 * time.Millisecond)
	if n := count(e, "staff@example.gov.uk", "Re: Case12"); n != 2 || codes[0] != 303 || codes[1] != 303 || codes[2] != 303 {
		t.Fatalf("3 concurrent POSTs of one form: %d replies in all (want 2), answers %v", n, codes)
	}
	// A form that was never issued is refused, not sent.
	if st, _ := jane.postFiles(landing+"/reply", map[string]string{"form": "0123456789abcdef.abc.0123456789abcdefghjkmnpq", "text": "forged"}, nil); st != 403 {
		t.Fatalf("unknown form: %d", st)
	}

	// The reply's header: a person's answer, threaded to the original.
	h := func(k string) string { return testutil.Header(r.Data, k) }
	if got := h("From"); got != `"Jane Doe via Example Council" <noreply@example.gov.uk>` {
		t.Errorf("From: %q", got)
	}
	if got := h("Reply-To"); got != `"Jane Doe" <jane@citizen.example>` {
		t.Errorf("Reply-To: %q", got)
	}
	if got := h("In-Reply-To"); got != "<orig-Case12@example.gov.uk>" {
		t.Errorf("In-Reply-To: %q", got)
	}
	if got := h("References"); got != "<earlier@example.gov.uk> <orig-Case12@example.gov.uk>" {
		t.Errorf("References: %q", got)
	}
	if h("Auto-Submitted") != "" {
		t.Error("a person's reply carries Auto-Submitted")
	}
	if mid := h("Message-ID"); !regexp.MustCompile(`^<` + sealed.ID + `\.[0-9a-z]{24}\.[0-9a-z]{12}@gw\.example\.gov\.uk>$`).MatchString(mid) {
		t.Errorf("Message-ID %q carries no thread token", mid)
	}
}

// multipartReply builds a reply POST without sending it.
func multipartReply(t *testing.T, b *webClient, path string, fields map[string]string) *http.Request {
	t.Helper()
	var sb strings.Builder
	sb.WriteString("--x\r\n")
	for k, v := range fields {
		sb.WriteString("Content-Disposition: form-data; name=\"" + k + "\"\r\n\r\n" + v + "\r\n--x\r\n")
	}
	body := strings.TrimSuffix(sb.String(), "\r\n--x\r\n") + "\r\n--x--\r\n"
	req, _ := http.NewRequest("POST", b.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
	return req
}

// TestPortalStaffAnswerStaysInThread: staff answer the portal reply from
// their mail client (swaks through the outbound listener, To: the outside
// address, In-Reply-To/References of the reply). The answer is sealed into
// the same conversation; nothing of it reaches the recipient's mailbox but
// one notification per answer. References that do not verify for the
// recipient (another conversation, another recipient, a forged token) do
// not put anything into someone else's conversation.
func TestPortalStaffAnswerStaysInThread(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	msg := "From: Alice Staff <staff@example.gov.uk>\r\nTo: Jane Doe <jane@citizen.example>\r\nSubject: [secure] Housing\r\n" +
		"Date: Thu, 26 Nov 2026 08:00:00 +0000\r\nMessage-ID: <orig-housing@example.gov.uk>\r\n\r\nDear Jane, about your flat.\r\n"
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example", "bob@other.example"}, msg)
	if code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message from Alice Staff", 0).Data))[1]
	bobLanding := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "bob@other.example", "Secure message from Alice Staff", 0).Data))[1]
	root, err := e.gw.Store.SealedByMsg(context.Background(), msgID(t, reply))
	if err != nil {
		t.Fatal(err)
	}
	jane := newBrowser(t, e)
	signIn(t, e, jane, landing, "jane@citizen.example")
	jane.get(landing)
	if st, page := jane.postFiles(landing+"/reply", map[string]string{"text": "Is Tuesday possible?"}, nil); st != 200 || !strings.Contains(page, "Your reply was sent securely") {
		t.Fatalf("reply %d:\n%s", st, page)
	}
	r := mailTo(t, e.sink, "staff@example.gov.uk", "Re: Housing", 0)
	replyID := testutil.Header(r.Data, "Message-ID")
	if got := testutil.Header(r.Data, "In-Reply-To"); got != "<orig-housing@example.gov.uk>" {
		t.Fatalf("In-Reply-To %q", got)
	}
	if got := testutil.Header(r.Data, "References"); got != "<orig-housing@example.gov.uk>" {
		t.Fatalf("References %q", got)
	}

	// Staff press Reply in Outlook: To: Jane (Reply-To), threaded to the reply.
	answer := func(to, refs, secret string) string {
		return "From: Alice Staff <staff@example.gov.uk>\r\nTo: " + to + "\r\nSubject: RE: Housing\r\nDate: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
			"Message-ID: <answer-" + strings.ToLower(secret) + "@example.gov.uk>\r\nIn-Reply-To: " + refs + "\r\nReferences: <orig-housing@example.gov.uk> " + refs + "\r\n" +
			"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + secret + ": yes, Tuesday at ten.\r\n\r\n> Is Tuesday possible?\r\n"
	}
	before := len(e.sink.Messages())
	swaksSend(t, e, "staff@example.gov.uk", "jane@citizen.example", answer("Jane Doe <jane@citizen.example>", replyID, "ANSWER1-q7w"))
	n1 := mailTo(t, e.sink, "jane@citizen.example", "New secure message from Alice Staff", before)
	withFile := strings.Replace(answer("<jane@citizen.example>", replyID, "ANSWER2-z9k"), "Content-Type: text/plain; charset=utf-8\r\n\r\n",
		"Content-Type: multipart/mixed; boundary=zz\r\n\r\n--zz\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", 1) +
		"--zz\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; filename=plan.txt\r\n\r\nFLOORPLAN-DATA\r\n--zz--\r\n"
	swaksSend(t, e, "staff@example.gov.uk", "jane@citizen.example", withFile)
	mailTo(t, e.sink, "jane@citizen.example", "New secure message from Alice Staff", len(e.sink.Messages())-1)
	waitQueueEmpty(t, e)
	if n := count(e, "jane@citizen.example", "New secure message"); n != 2 {
		t.Fatalf("%d notifications for 2 answers", n)
	}
	if !strings.Contains(decodeQP(n1.Data), landing) || !strings.Contains(decodeQP(n1.Data), "answered you in your secure conversation") {
		t.Fatalf("notification does not lead to the conversation:\n%s", decodeQP(n1.Data))
	}
	for _, m := range e.sink.Messages() {
		for _, rc := range m.Rcpts {
			if rc == "jane@citizen.example" && (strings.Contains(string(m.Data), "ANSWER") || strings.Contains(decodeQP(m.Data), "Tuesday at ten")) {
				t.Fatalf("the staff answer reached Jane's mailbox:\n%s", m.Data)
			}
		}
	}
	st, page := jane.get(landing)
	if st != 200 || !strings.Contains(page, "ANSWER1-q7w: yes, Tuesday at ten.") || !strings.Contains(page, "ANSWER2-z9k") || !strings.Contains(page, "Alice Staff answered") ||
		!strings.Contains(page, "<pre>Is Tuesday possible?</pre>") {
		t.Fatalf("the conversation does not show the answers: %d\n%s", st, page)
	}
	thread, _ := e.gw.Store.ThreadOf(context.Background(), root.ID, "jane@citizen.example")
	if len(thread) != 3 {
		t.Fatalf("Jane's conversation has %d messages, want reply + 2 answers", len(thread))
	}
	// The answer's attachment: Jane downloads it; through Bob's link it is
	// not there, even signed in as Bob.
	fileLink := regexp.MustCompile(`href="(/m/[0-9a-z]{32}/t/[0-9a-z]{26}/a/\d+)"`).FindStringSubmatch(page)
	if fileLink == nil {
		t.Fatalf("no link to the answer's attachment:\n%s", page)
	}
	if st, got := jane.get(fileLink[1]); st != 200 || !strings.HasPrefix(got, "FLOORPLAN-DATA") {
		t.Fatalf("answer attachment %d %q", st, got)
	}
	for _, m := range e.sink.Messages() {
		if strings.Contains(string(m.Data), "FLOORPLAN") && m.Rcpts[0] != "staff@example.gov.uk" {
			t.Fatalf("the answer's attachment left the gateway to %v", m.Rcpts)
		}
	}
	// Jane's next reply threads to the newest answer.
	jane.get(landing)
	n := len(e.sink.Messages())
	jane.postFiles(landing+"/reply", map[string]string{"text": "Thanks."}, nil)
	r2 := mailTo(t, e.sink, "staff@example.gov.uk", "Re: Housing", n)
	if got := testutil.Header(r2.Data, "In-Reply-To"); got != "<answer-answer2-z9k@example.gov.uk>" {
		t.Fatalf("second reply In-Reply-To %q", got)
	}

	// Bob is a recipient of the message too, but Jane's token is not his:
	// an answer to Bob with it is sealed for him on its own (it may quote
	// Jane), never into Jane's conversation nor into his.
	before = len(e.sink.Messages())
	out := swaksSend(t, e, "staff@example.gov.uk", "bob@other.example", answer("<bob@other.example>", replyID, "FORBOB-m3x"))
	bobID := queuedAs.FindStringSubmatch(out)[1]
	mailTo(t, e.sink, "bob@other.example", "Secure message from Alice Staff", before)
	if m, err := e.gw.Store.SealedByMsg(context.Background(), bobID); err != nil || m.ParentID != "" {
		t.Fatalf("Bob's copy is not sealed on its own: %+v %v", m, err)
	}
	if _, err := e.gw.Store.SealedInThread(context.Background(), bobID, root.ID); err == nil {
		t.Fatal("Bob's copy is in the conversation")
	}
	for _, m := range e.sink.Messages() {
		if strings.Contains(string(m.Data), "FORBOB") {
			t.Fatalf("the answer to Bob left in plaintext:\n%s", m.Data)
		}
	}
	for _, who := range []string{"jane@citizen.example", "bob@other.example"} {
		th, _ := e.gw.Store.ThreadOf(context.Background(), root.ID, who)
		for _, m := range th {
			if m.MsgID == bobID {
				t.Fatalf("the answer to Bob went into %s's conversation", who)
			}
		}
	}
	bob := newBrowser(t, e)
	signIn(t, e, bob, bobLanding, "bob@other.example")
	if _, page := bob.get(bobLanding); strings.Contains(page, "Tuesday") || strings.Contains(page, "ANSWER") {
		t.Fatal("Bob sees Jane's conversation")
	}
	bobFile := bobLanding + fileLink[1][len(landing):]
	if st, got := bob.get(bobFile); st != 404 || strings.Contains(got, "FLOORPLAN") {
		t.Fatalf("Bob downloads Jane's answer's attachment: %d", st)
	}

	// A forged token (Jane's MAC on another root, a made-up MAC): no
	// conversation. The message is not sealed into any thread.
	before = len(e.sink.Messages())
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, message("staff@example.gov.uk", "jane@citizen.example", "[secure] other matter", "Another matter."))
	if code != 250 {
		t.Fatal(reply)
	}
	mailTo(t, e.sink, "jane@citizen.example", "Secure message", before)
	root2, err := e.gw.Store.SealedByMsg(context.Background(), msgID(t, reply))
	if err != nil {
		t.Fatal(err)
	}
	mac := strings.Split(strings.Trim(replyID, "<>"), ".")[1]
	other := root2.ID + "." + mac + ".abcdefghjkmn@gw.example.gov.uk"
	forged := root.ID + ".abcdefghjkmnpqrstvwxyz01." + "abcdefghjkmn@gw.example.gov.uk"
	for i, refs := range []string{"<" + other + ">", "<" + forged + ">"} {
		secret := "FORGED" + strings.Repeat("x", i)
		out := swaksSend(t, e, "staff@example.gov.uk", "jane@citizen.example", answer("<jane@citizen.example>", refs, secret))
		id := queuedAs.FindStringSubmatch(out)[1]
		// Not an answer to any conversation: the policy treats it as any
		// other mail (here: delivered), and no thread has it.
		waitQueueEmpty(t, e)
		for _, r := range []string{root.ID, root2.ID} {
			if _, err := e.gw.Store.SealedInThread(context.Background(), id, r); err == nil {
				t.Fatalf("forged References %s put the message into Jane's conversation %s", refs, r)
			}
		}
		if _, err := e.gw.Store.SealedByMsg(context.Background(), id); err == nil {
			t.Fatalf("forged References %s counted as an answer", refs)
		}
	}
	th, _ := e.gw.Store.ThreadOf(context.Background(), root.ID, "jane@citizen.example")
	if len(th) != 4 {
		t.Fatalf("Jane's conversation has %d messages after forged answers, want 4", len(th))
	}

	// Withdrawn for Jane: her conversation is destroyed with her access;
	// Bob keeps his.
	staff := staffSignIn(t, e)
	if st, page := staff.post("/portal/s/"+root.ID+"/revoke", url.Values{"recipient": {"jane@citizen.example"}, "confirm": {"yes"}}); st != 200 || !strings.Contains(page, "Access withdrawn") {
		t.Fatalf("withdraw for Jane %d:\n%s", st, page)
	}
	for _, m := range th {
		got, _ := e.gw.Store.GetSealed(context.Background(), m.ID)
		if got.WrappedKey != nil {
			t.Errorf("message %s of Jane's conversation outlives her access", m.ID)
		}
		if files, _ := filepath.Glob(filepath.Join(e.cfg.Path("portal"), m.ID[:2], m.ID+"*")); len(files) > 0 {
			t.Errorf("blobs of %s left: %v", m.ID, files)
		}
	}
	if st, page := bob.get(bobLanding); st != 200 || !strings.Contains(page, "about your flat") {
		t.Fatalf("Bob lost access with Jane: %d", st)
	}
}

// staffSignIn signs Alice in to the sender's view.
func staffSignIn(t *testing.T, e *env) *webClient {
	t.Helper()
	staff := newBrowser(t, e)
	staff.get("/portal")
	n := len(e.sink.Messages())
	if st, page := staff.post("/portal/code", url.Values{"address": {"staff@example.gov.uk"}}); st != 200 || !strings.Contains(page, "Enter your code") {
		t.Fatalf("sender code page %d:\n%s", st, page)
	}
	c := codeRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "staff@example.gov.uk", "one-time code", n).Data))
	va := regexp.MustCompile(`action="([^"]*verify[^"]*)"`).FindStringSubmatch(staff.page)
	if st, page := staff.post(strings.NewReplacer("&amp;", "&", "&#43;", "+").Replace(va[1]), url.Values{"code": {c[1]}}); st != 200 || !strings.Contains(page, "Messages you sent securely") {
		t.Fatalf("sender view %d:\n%s", st, page)
	}
	return staff
}

// TestPortalFirstContactAfterSealing: a domain that only ever got portal
// mail, or one the sender confirmed a held message to, is no first contact.
func TestPortalFirstContactAfterSealing(t *testing.T) {
	e := start(t, nil)
	// Not sensitive, so not held: sealed (the sender asked).
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"ann@partner.example"}, message("staff@example.gov.uk", "ann@partner.example", "[secure] hello", "Hello Ann."))
	if code != 250 {
		t.Fatal(reply)
	}
	mailTo(t, e.sink, "ann@partner.example", "Secure message", 0)
	waitQueueEmpty(t, e)
	if !e.gw.Queue.Known("partner.example") {
		t.Fatal("a sealed delivery did not make the domain known")
	}
	if k, _ := e.gw.Store.KnownDomains(context.Background()); !k["partner.example"] {
		t.Fatal("the contact is not stored")
	}
	sensitive := "Ann, the NHS number is 943 476 5919."
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"ann@partner.example"}, message("staff@example.gov.uk", "ann@partner.example", "second", sensitive))
	if code != 250 {
		t.Fatal(reply)
	}
	if d := decision(t, e, msgID(t, reply)); d.State == "held" || strings.Contains(d.Detail, "first-contact") {
		t.Fatalf("held as a first contact after a sealed delivery: %+v", d)
	}

	// Confirmed by the sender: known at once.
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"gp@surgery.example"}, message("staff@example.gov.uk", "gp@surgery.example", "referral", sensitive))
	if code != 250 {
		t.Fatal(reply)
	}
	id := msgID(t, reply)
	if d := decision(t, e, id); d.State != "held" {
		t.Fatalf("first contact not held: %+v", d)
	}
	h := holds{e.gw}
	if _, err := h.Resolve(context.Background(), id, e.gw.holdToken(id), true); err != nil {
		t.Fatal(err)
	}
	if !e.gw.Queue.Known("surgery.example") {
		t.Fatal("a confirmed delivery did not make the domain known")
	}
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"gp@surgery.example"}, message("staff@example.gov.uk", "gp@surgery.example", "referral 2", sensitive))
	if d := decision(t, e, msgID(t, reply)); code != 250 || d.State == "held" {
		t.Fatalf("held again after the sender confirmed: %+v", d)
	}
}

// TestPortalBidiAttachmentName: an attachment named with a right-to-left
// override ("invoice<RLO>fdp.exe" shows as "invoiceexe.pdf") is listed and
// downloaded with the control character replaced, visibly.
func TestPortalBidiAttachmentName(t *testing.T) {
	e := start(t, func(c *config.Config) { c.Policy.Disable = []string{"first-contact-sensitive"} })
	msg := "From: staff@example.gov.uk\r\nTo: jane@citizen.example\r\nSubject: [secure] invoice\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
		"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''invoice%E2%80%AEfdp.exe\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n" +
		"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"=?utf-8?q?report=E2=81=A6=E2=80=8B.txt?=\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n"
	if code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example"}, msg); code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	b := newBrowser(t, e)
	signIn(t, e, b, landing, "jane@citizen.example")
	// Durations in mails are words; a sender without a name is named once.
	if code := decodeQP(mailTo(t, e.sink, "jane@citizen.example", "one-time code", 0).Data); !strings.Contains(code, "It works for 15 minutes and only once") {
		t.Fatalf("code mail:\n%s", code)
	}
	st, page := b.get(landing)
	if strings.Contains(page, "staff@example.gov.uk (staff@example.gov.uk)") || !strings.Contains(page, "<dd>staff@example.gov.uk</dd>") {
		t.Fatalf("the sender is shown twice:\n%s", page)
	}
	if st != 200 || strings.ContainsAny(page, "\u202e\u2066\u200b") || !strings.Contains(page, "invoice\ufffdfdp.exe") || !strings.Contains(page, "report\ufffd\ufffd.txt") {
		t.Fatalf("listing %d:\n%s", st, page)
	}
	links := regexp.MustCompile(`href="(/m/[0-9a-z]{32}/a/\d+)"`).FindAllStringSubmatch(page, -1)
	if len(links) != 2 {
		t.Fatalf("%d attachment links", len(links))
	}
	req, _ := http.NewRequest("GET", b.base+links[0][1], nil)
	resp, err := b.c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cd := resp.Header.Get("Content-Disposition")
	if un, _ := url.PathUnescape(cd); strings.ContainsAny(cd+un, "\u202e") || strings.Contains(strings.ToUpper(cd), "%E2%80%AE") ||
		!strings.Contains(cd, `filename="invoice_fdp.exe"`) || !strings.Contains(cd, "filename*=UTF-8''invoice%EF%BF%BDfdp.exe") {
		t.Fatalf("Content-Disposition %q", cd)
	}
}

// TestPolicySeesPortalThread: message.portal_thread and
// recipient.portal_thread as rules see them: the token in References is
// bound to Jane, so it is her conversation, not Bob's (though Bob got the
// first message too), and the built-in rules say so.
func TestPolicySeesPortalThread(t *testing.T) {
	e := start(t, func(c *config.Config) {
		c.Policy.Disable = []string{"first-contact-sensitive"}
		c.Policy.Rules = append(c.Policy.Rules, config.PolicyRule{Name: "review-answers", When: `message.portal_thread && recipient.address == "jane@citizen.example"`, Action: "hold", Reason: "answers are reviewed"})
	})
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example", "bob@other.example"},
		message("Alice Staff <staff@example.gov.uk>", "jane@citizen.example, bob@other.example", "[secure] Both", "Hello both."))
	if code != 250 {
		t.Fatal(reply)
	}
	landing := "/m/" + linkRe.FindStringSubmatch(decodeQP(mailTo(t, e.sink, "jane@citizen.example", "Secure message", 0).Data))[1]
	jane := newBrowser(t, e)
	signIn(t, e, jane, landing, "jane@citizen.example")
	jane.get(landing)
	jane.postFiles(landing+"/reply", map[string]string{"text": "Reply."}, nil)
	replyID := testutil.Header(mailTo(t, e.sink, "staff@example.gov.uk", "Re: Both", 0).Data, "Message-ID")
	answer := "From: staff@example.gov.uk\r\nTo: jane@citizen.example, bob@other.example, carol@third.example\r\nSubject: RE: Both\r\nIn-Reply-To: " + replyID + "\r\nReferences: " + replyID + "\r\n\r\nAnswer.\r\n"
	// "policy test" in the console and the API says what the gateway does.
	pd, err := e.gw.API.PolicyTest(context.Background(), []byte(answer), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range pd.Recipients {
		if r.Address == "jane@citizen.example" && strings.Join(r.Rules, ",") != "portal-thread,review-answers" {
			t.Errorf("policy test: %s: %v", r.Address, r.Rules)
		}
	}
	code, reply = outbound(t, e, "staff@example.gov.uk", []string{"jane@citizen.example", "bob@other.example", "carol@third.example"}, answer)
	if code != 250 {
		t.Fatal(reply)
	}
	d := decision(t, e, msgID(t, reply))
	var got policyDetail
	if err := json.Unmarshal([]byte(d.Detail), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"jane@citizen.example": "portal-thread,review-answers",
		"bob@other.example":    "portal-thread-quoted",
		"carol@third.example":  "portal-thread-quoted",
	}
	for _, r := range got.Recipients {
		if strings.Join(r.Rules, ",") != want[r.Address] {
			t.Errorf("%s: rules %v, want %s", r.Address, r.Rules, want[r.Address])
		}
	}
}

type policyDetail struct {
	Recipients []struct {
		Address string   `json:"address"`
		Rules   []string `json:"rules"`
	} `json:"recipients"`
}

// TestHoldExpiryInWords: the mail about an unconfirmed hold gives the
// time in words ("3 days"), not as the config spells it ("72h0m0s").
func TestHoldExpiryInWords(t *testing.T) {
	e := start(t, nil)
	code, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "words", "x"))
	if code != 250 {
		t.Fatal(reply)
	}
	noticeTo(t, e, "staff@example.gov.uk")
	e.gw.expire(context.Background(), msgID(t, reply))
	text := decodeQP(mailTo(t, e.sink, "staff@example.gov.uk", "Not sent: words", 0).Data)
	if !strings.Contains(text, "nobody confirmed it within 3 days.") || strings.Contains(text, "72h") || strings.Contains(text, " 3d") {
		t.Fatalf("expiry notice:\n%s", text)
	}
}
