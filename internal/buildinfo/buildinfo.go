// Package buildinfo carries the version stamped in at build time
// (-ldflags "-X github.com/notifyd/notifyd/internal/buildinfo.Version=v1.2.3").
//
// It must not hold logic: anything that decides on the version belongs to
// its caller.
package buildinfo

import "runtime/debug"

// Version is set by the linker; otherwise it is read from the module's build
// information, or "dev".
var Version = ""

func init() {
	if Version != "" {
		return
	}
	Version = "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		Version = bi.Main.Version
	}
}

// UserAgent is what notifyd sends to receivers.
func UserAgent() string { return "notifyd/" + Version + " (+https://github.com/notifyd/notifyd)" }
