//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// centralFleet runs the central-mode fleet simulation (forwarder's TestCentralFleet: 10,000
// and 100,000 instances over a simulated day, Security Hub at 10 calls a second, burst 30)
// and returns its Markdown table. quick runs 1,000 instances.
func centralFleet(repo, tmp string, quick bool) string {
	sizes := "10000,100000"
	if quick {
		sizes = "1000"
	}
	out := filepath.Join(tmp, "centralfleet.md")
	c := exec.Command("go", "test", "-count=1", "-timeout", "60m", "-run", "^TestCentralFleet$", "./forwarder/")
	c.Dir = repo
	c.Env = append(os.Environ(), "EC2SEC_CENTRAL_FLEET="+sizes, "EC2SEC_CENTRAL_FLEET_OUT="+out)
	if b, err := c.CombinedOutput(); err != nil {
		return fmt.Sprintf("No result: `TestCentralFleet` failed: %v\n\n```\n%s\n```\n", err, lastLines(string(b), 20))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Sprintf("No result: %v\n", err)
	}
	return string(b)
}
