package main

import (
	"fmt"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// buildVersion describes the binary from what the Go toolchain stamped in
// it: the module version (a tag for `go install …@v1.2.3`, "(devel)" for a
// local build), the VCS revision and time it was built from and whether
// the tree had uncommitted changes, and the Go version. It is for the
// operator's terminal only: no banner, header or public endpoint names the
// product or its version.
func buildVersion(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "sealpost (unknown version: built without module information)\n"
	}
	version := bi.Main.Version
	if version == "" {
		version = "(devel)"
	}
	settings := map[string]string{}
	for _, s := range bi.Settings {
		settings[s.Key] = s.Value
	}
	var b strings.Builder
	fmt.Fprintf(&b, "sealpost %s\n", version)
	if rev := settings["vcs.revision"]; rev != "" {
		state := ""
		if settings["vcs.modified"] == "true" {
			state = " (with uncommitted changes)"
		}
		fmt.Fprintf(&b, "  commit  %s%s\n", rev, state)
	} else {
		b.WriteString("  commit  unknown (not built from a version-controlled tree)\n")
	}
	if t := settings["vcs.time"]; t != "" {
		fmt.Fprintf(&b, "  date    %s\n", t)
	}
	fmt.Fprintf(&b, "  go      %s\n", bi.GoVersion)
	return b.String()
}

func versionString() string { return buildVersion(debug.ReadBuildInfo()) }

func versionCmd() *cobra.Command {
	return newCmd("version", "Print the version and build information", cobra.NoArgs, func(cmd *cobra.Command, args []string) error {
		fmt.Print(versionString())
		return nil
	})
}
