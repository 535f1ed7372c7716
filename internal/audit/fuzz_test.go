package audit

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzVerifyBundle: a bundle is untrusted input (it arrives from another
// machine). Verifying never panics, and a bundle changed anywhere either
// fails to verify or proves exactly the events the original proved.
func FuzzVerifyBundle(f *testing.F) {
	fx := fill(f)
	_, data := bundleOf(f, fx, Selection{Message: "m2"})
	var orig Bundle
	if err := json.Unmarshal(data, &orig); err != nil {
		f.Fatal(err)
	}
	want, err := VerifyBundle(&orig, fx.keys.Public())
	if err != nil {
		f.Fatal(err)
	}
	wantEvents, _ := json.Marshal(want.Events)
	f.Add(data)
	f.Add([]byte(`{}`))
	f.Add(bytes.Replace(data, []byte(`"m2"`), []byte(`"m3"`), 1))
	f.Fuzz(func(t *testing.T, in []byte) {
		var b Bundle
		if json.Unmarshal(in, &b) != nil {
			return
		}
		rep, err := VerifyBundle(&b, fx.keys.Public())
		if err != nil {
			return
		}
		got, _ := json.Marshal(rep.Events)
		if !bytes.Equal(got, wantEvents) {
			t.Fatalf("a changed bundle verified and proves other events:\n%s", got)
		}
	})
}
