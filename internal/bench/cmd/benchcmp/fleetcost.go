//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// fleetCostInstances is the fleet size of the cost simulation (TestFleetCost also runs 1 and
// 1,000 instances).
const fleetCostInstances = 10_000

// fleetCost runs the fleet cost simulation (agent's TestFleetCost: a simulated day of the
// real Reporter and sinks for 1, 1,000 and 10,000 instances) and returns its Markdown: API
// calls, bytes, custom metric count and the monthly estimate. quick runs 200 instances.
func fleetCost(repo, tmp string, quick bool) string {
	n := fleetCostInstances
	if quick {
		n = 200
	}
	out := filepath.Join(tmp, "fleetcost.md")
	c := exec.Command("go", "test", "-count=1", "-timeout", "60m", "-run", "^TestFleetCost$", "./agent/")
	c.Dir = repo
	c.Env = append(os.Environ(), fmt.Sprintf("EC2SEC_FLEET_COST=%d", n), "EC2SEC_FLEET_COST_OUT="+out)
	if b, err := c.CombinedOutput(); err != nil {
		return fmt.Sprintf("No result: `TestFleetCost` failed: %v\n\n```\n%s\n```\n", err, lastLines(string(b), 20))
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return fmt.Sprintf("No result: %v\n", err)
	}
	return string(b)
}
