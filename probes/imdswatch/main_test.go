package imdswatch

import (
	"os"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv("IMDSWATCH_HELPER"); mode != "" {
		os.Exit(helper(mode))
	}
	testenv.Main(m)
}
