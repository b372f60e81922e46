package awsfake

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

// validator checks each file named on the command line against botocore's model of the
// securityhub BatchImportFindings input: the same model the AWS CLI and SDKs are built from.
const validator = `
import json, sys
try:
    import botocore.session
    from botocore.validate import ParamValidator
except ImportError as e:
    print("MISSING", e); sys.exit(3)
shape = botocore.session.get_session().get_service_model("securityhub").operation_model("BatchImportFindings").input_shape
bad = 0
for p in sys.argv[1:]:
    with open(p) as f:
        body = json.load(f)
    report = ParamValidator().validate(body, shape)
    if report.has_errors():
        bad += 1
        print(p, report.generate_report())
sys.exit(1 if bad else 0)
`

// ValidateBatchImportFindings validates every body with botocore's ParamValidator. A missing
// python3 or botocore skips (fails under CI=true).
func ValidateBatchImportFindings(t testing.TB, bodies [][]byte) {
	t.Helper()
	if len(bodies) == 0 {
		t.Fatal("no BatchImportFindings bodies to validate")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Missing(t, "python3 not found: cannot validate ASFF against botocore")
		return
	}
	dir := t.TempDir()
	args := []string{"-c", validator}
	for i, b := range bodies {
		p := filepath.Join(dir, fmt.Sprintf("body-%04d.json", i))
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, p)
	}
	cmd := exec.Command(py, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	if bytes.HasPrefix(out.Bytes(), []byte("MISSING")) {
		testenv.Missing(t, "botocore not importable: "+out.String())
		return
	}
	if err != nil {
		t.Fatalf("botocore rejects BatchImportFindings bodies: %v\n%s", err, out.String())
	}
}
