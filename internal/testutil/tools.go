package testutil

import (
	"fmt"
	"os"
	"testing"
)

// RequireTools reports whether SEALPOST_REQUIRE_TOOLS is set (make test
// sets it to 1): then nothing may skip, and a missing tool or privilege
// fails the test that needs it, loudly, instead of passing it unseen.
func RequireTools() bool {
	v := os.Getenv("SEALPOST_REQUIRE_TOOLS")
	return v != "" && v != "0"
}

// Missing ends t because something it needs is missing: a skip when tools
// are optional, a failure under RequireTools. Every test that cannot run
// for want of a tool goes through here (TestNoUnguardedSkips checks).
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if RequireTools() {
		t.Fatalf("%s (SEALPOST_REQUIRE_TOOLS is set: make test installs every tool)", msg)
	}
	t.Skipf("%s; run `make test` to install the tools", msg)
}
