package agent

import (
	"context"
	"log/slog"
	"os"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// TestMain also serves as the daemon's worker (`<exe> run --worker`) when a test runs
// RunCommand with this test binary as its Executable: the environment it inherits is the
// test's, loopback only.
func TestMain(m *testing.M) {
	if len(os.Args) == 3 && os.Args[1] == "run" && os.Args[2] == "--worker" {
		log := slog.New(slog.NewJSONHandler(os.Stderr, nil))
		// Confined as the CLI's workers are, so every daemon test runs them that way.
		os.Exit(WorkerCommand{Stdin: os.Stdin, Stdout: os.Stdout, Log: log, Confine: true}.Run(context.Background()))
	}
	testenv.Main(m)
}
