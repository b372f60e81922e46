// Package systemd ships ec2sec's hardened systemd units (beside this file), so that
// `ec2sec service install` and the deb/rpm packages install the very same units:
// ec2sec.service, the agent, and ec2sec-imdswatch.service, the IMDS watcher alone with the
// capabilities it needs (docs/imds-watch.md, "Privileges").
package systemd

import (
	_ "embed"
	"fmt"
	"strings"
)

// BinPath is where the deb and rpm packages put the binary, and the path the unit names.
const BinPath = "/usr/bin/ec2sec"

// Unit is the text of ec2sec.service as shipped in the packages.
//
//go:embed ec2sec.service
var Unit string

// IMDSWatchUnit is the text of ec2sec-imdswatch.service, the IMDS watcher's unit, as shipped
// in the packages.
//
//go:embed ec2sec-imdswatch.service
var IMDSWatchUnit string

// IMDSWatchName is the watcher unit's name.
const IMDSWatchName = "ec2sec-imdswatch.service"

// The lines of Unit that depend on where the binary is; Template swaps them for placeholders.
const (
	execLine = "ExecStart=" + BinPath + " run"
	condLine = "ConditionFileIsExecutable=" + BinPath
)

// Template returns Unit as a kardianos/service (v1.3.0) SystemdScript: the library's own small
// template engine (not text/template: keys have no leading dot, `{{Path | cmdEscape}}`,
// `{{range Arguments}}…{{.}}…{{end}}`) fills in the installing binary's path and arguments.
// Nothing else of the unit changes, so the installed service keeps every hardening setting.
func Template() (string, error) {
	if strings.Contains(Unit, "{{") {
		return "", fmt.Errorf("ec2sec.service contains %q, which the service template engine would read as an action", "{{")
	}
	for _, l := range []string{execLine, condLine} {
		if n := strings.Count(Unit, "\n"+l+"\n"); n != 1 {
			return "", fmt.Errorf("ec2sec.service: want exactly one line %q, found %d", l, n)
		}
	}
	r := strings.NewReplacer(
		"\n"+execLine+"\n", "\nExecStart={{Path | cmdEscape}}{{range Arguments}} {{. | cmd}}{{end}}\n",
		"\n"+condLine+"\n", "\nConditionFileIsExecutable={{Path | cmdEscape}}\n",
	)
	return r.Replace(Unit), nil
}
