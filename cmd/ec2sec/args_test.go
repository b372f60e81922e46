package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/agent"
)

// Every subcommand refuses a stray argument by name (exit 2) and answers -h with exit 0.
func TestSubcommandArgs(t *testing.T) {
	for _, cmd := range []string{"scan", "checks", "imds-watch", "run"} {
		var out, errb bytes.Buffer
		if code := run(context.Background(), []string{cmd, "stray"}, &out, &errb); code != agent.ExitUsage ||
			!strings.Contains(errb.String(), "ec2sec "+cmd+": unexpected argument \"stray\"") {
			t.Errorf("%s stray: exit %d, stderr %q", cmd, code, errb.String())
		}
		if code := run(context.Background(), []string{cmd, "-h"}, &out, &errb); code != agent.ExitOK {
			t.Errorf("%s -h: exit %d", cmd, code)
		}
	}
}
