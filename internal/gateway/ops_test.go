package gateway

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"sealpost/internal/store"
)

// TestOperationsGoThroughOps: the API's release and delete are the ops
// service's: counted in the holds metric, the spool bytes of a deleted
// message gone at once, one audit event each; and when the audit log
// cannot be written the API says so instead of reporting success.
func TestOperationsGoThroughOps(t *testing.T) {
	e := start(t, nil)
	ctx := context.Background()
	tok := "sp_test_token_ops_0123456789"
	h := sha256.Sum256([]byte(tok))
	if err := e.gw.Store.AddAPIToken(ctx, &store.APIToken{Name: "ops", Hash: h[:], Scope: "admin"}); err != nil {
		t.Fatal(err)
	}
	post := func(path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+e.gw.WebAddr.String()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	held := func() string {
		t.Helper()
		_, reply := outbound(t, e, "staff@example.gov.uk", []string{"boss@examp1e.gov.uk"}, message("staff@example.gov.uk", "boss@examp1e.gov.uk", "minutes", "the minutes"))
		return msgID(t, reply)
	}

	id := held()
	m, err := e.gw.Store.Message(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := post("/api/quarantine/"+id+"/delete", `{"reason":"wrong recipient"}`); code != 200 {
		t.Fatalf("delete: %d %s", code, body)
	}
	if got := holdsCounted(t, e.gw, "deleted"); got != 1 {
		t.Fatalf("holds{deleted} = %v, want 1", got)
	}
	if m.Spool.Seg == 0 {
		if _, err := os.Stat(e.gw.Config().Path("spool", "q", id)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("spool file of the deleted message: %v", err)
		}
	}
	evs, _ := e.gw.Store.AuditEvents(ctx, id, 100)
	n := 0
	for _, ev := range evs {
		if ev.Action == "quarantine.deleted" {
			n++
			if ev.Actor != "api:ops" || ev.Detail != "wrong recipient" {
				t.Fatalf("audit event %+v", ev)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d quarantine.deleted events, want 1", n)
	}

	// The control socket's paths are not on the web listener.
	if code, _ := post("/v1/quarantine/"+id+"/release", `{"reason":"x"}`); code != http.StatusNotFound {
		t.Fatalf("the web listener answers a control-socket path: %d", code)
	}

	id = held()
	e.gw.Ops.Audit = func(context.Context, *store.AuditEvent) error { return errors.New("disk I/O error") }
	code, body := post("/api/quarantine/"+id+"/release", `{"reason":"ok by the DPO"}`)
	if code != http.StatusInternalServerError || !strings.Contains(body, "audit log could not be written") {
		t.Fatalf("release with the audit log failing: %d %s", code, body)
	}
}

// holdsCounted reads sealpost_holds_total{result=result}.
func holdsCounted(t *testing.T, gw *Gateway, result string) float64 {
	t.Helper()
	mfs, err := gw.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(mf.GetName(), "sealpost_hold") && l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}
