//go:build linux

package main

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"

	"github.com/ec2sec/ec2sec/internal/bench"
)

// noPublicSSH times the scan of the fixture's worst case for the sshd probe: a host whose sshd
// listens on loopback only, beside a public nginx. The sockets of sshd alone cannot settle
// that nothing public is SSH's, so the probe walks every process's file descriptors (2,000
// processes, 5-9 each). The scan must say PASSED with the loopback listener, or the figure
// would time a scan that looked at less.
func noPublicSSH(tmp, bin, config string, env []string, runs int) (measure, error) {
	fix, err := bench.BuildSize(filepath.Join(tmp, "fixture-no-public-ssh"), bench.FullNoPublicSSH)
	if err != nil {
		return measure{}, fmt.Errorf("no-public-ssh fixture: %w", err)
	}
	args := []string{bin, "scan", "--root", fix.Root, "--proc", fix.Proc, "--format", "json", "--config", config,
		"--probes", "userdata,credentials,ssm,sshd,network,console"}
	c := exec.Command(args[0], args[1:]...)
	c.Env = env
	out, err := c.Output()
	if err != nil {
		return measure{}, fmt.Errorf("ec2sec scan (no public sshd): %v", err)
	}
	var rep struct {
		Results []struct{ Check, Status, Reason string } `json:"results"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		return measure{}, fmt.Errorf("ec2sec scan output (no public sshd): %w", err)
	}
	ok := false
	for _, r := range rep.Results {
		if r.Check == "ssh-listening-public" {
			ok = r.Status == "PASSED" && r.Reason == "SSH listens on loopback only: tcp://127.0.0.1:22"
			if !ok {
				return measure{}, fmt.Errorf("no public sshd: ssh-listening-public %s (%s), want PASSED on loopback only", r.Status, r.Reason)
			}
		}
	}
	if !ok {
		return measure{}, fmt.Errorf("no public sshd: no ssh-listening-public result")
	}
	ms, err := timeAll([][]string{args}, env, runs, tmp)
	if err != nil {
		return measure{}, err
	}
	m := ms[0]
	m.name = "ec2sec scan, all probes but imds and ec2api (no public sshd: every process's sockets walked)"
	return m, nil
}
