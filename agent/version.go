package agent

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set at link time by the Makefile (-X); a plain `go build` reports the module's build info.
var (
	version = "dev"
	commit  = ""
)

// Version returns the agent's version string.
func Version() string { return version }

// VersionInfo returns the `ec2sec version` text: version, commit and Go version.
func VersionInfo() string {
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	return fmt.Sprintf("ec2sec %s\ncommit %s\ngo %s %s/%s\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
