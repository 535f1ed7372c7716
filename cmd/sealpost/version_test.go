package main

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildVersion(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.24.1", Main: debug.Module{Path: "sealpost", Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.time", Value: "2026-12-01T20:00:00Z"}, {Key: "vcs.modified", Value: "true"}}}
	got := buildVersion(bi, true)
	for _, want := range []string{"sealpost v1.2.3\n", "commit  0123456789abcdef0123456789abcdef01234567 (with uncommitted changes)\n", "date    2026-12-01T20:00:00Z\n", "go      go1.24.1\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("version lacks %q:\n%s", want, got)
		}
	}
	bi.Settings[2].Value = "false"
	if got := buildVersion(bi, true); strings.Contains(got, "uncommitted") {
		t.Errorf("a clean tree reported modified:\n%s", got)
	}
	if got := buildVersion(&debug.BuildInfo{GoVersion: "go1.24.1"}, true); !strings.HasPrefix(got, "sealpost (devel)\n") || !strings.Contains(got, "commit  unknown") {
		t.Errorf("no module version, no VCS:\n%s", got)
	}
	if got := buildVersion(nil, false); !strings.Contains(got, "unknown version") {
		t.Errorf("no build info: %q", got)
	}
}
