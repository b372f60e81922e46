package packaging

import (
	"encoding/json"
	"os"
	"slices"
	"testing"

	"github.com/ec2sec/ec2sec/probes"
)

// The opt-in EC2 Describe policy (its own document) grants exactly the actions the
// ec2api probe calls: no more (least privilege), no fewer (a missing one is a NOT_AVAILABLE
// on every instance of the fleet).
func TestIAMPolicyCoversEC2Probe(t *testing.T) {
	b, err := os.ReadFile("iam/ec2-describe-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Statement []struct {
			Sid    string
			Action any
		}
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var ec2 []string
	for _, st := range doc.Statement {
		acts, _ := st.Action.([]any)
		for _, a := range acts {
			if s, _ := a.(string); len(s) > 4 && s[:4] == "ec2:" {
				ec2 = append(ec2, s)
			}
		}
	}
	want := slices.Clone(probes.EC2Actions)
	slices.Sort(want)
	slices.Sort(ec2)
	if !slices.Equal(ec2, want) {
		t.Errorf("policy grants %v; the ec2api probe calls %v", ec2, want)
	}
}
