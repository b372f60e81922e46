package probes

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// UserDataProbe looks for secrets in the instance's user data: live from IMDS, and the copies
// cloud-init, EC2Launch and EC2Config leave on disk, including earlier instances' caches
// baked into an image. User data is readable by every process on the host that can reach
// IMDS and by anyone with ec2:DescribeInstanceAttribute: it is no place for a secret.
type UserDataProbe struct{}

// Name implements Probe.
func (UserDataProbe) Name() string { return "userdata" }

// UsesSecrets tells the scan this probe needs Env.Secrets and Env.FingerprintKey.
func (UserDataProbe) UsesSecrets() bool { return true }

const userDataDocs = "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/user-data.html"

// Checks implements Probe.
func (UserDataProbe) Checks() []Check {
	return []Check{
		{
			ID: "userdata-secret", Probe: "userdata", Severity: Critical,
			Title:      "A secret is in the instance's user data",
			FailedWhen: "a secret in the live user data (IMDS), after decoding",
			Practices:  []int{12},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Rotate the secret now. Fetch secrets at boot from AWS Secrets Manager or SSM Parameter Store (SecureString) with the instance role instead, and replace the user data (stop the instance, aws ec2 modify-instance-attribute --user-data, or a new launch template version).",
				URL:  userDataDocs,
			},
		},
		{
			ID: "userdata-cached-secret", Probe: "userdata", Severity: High,
			Title:      "A secret is in user data or scripts cached on disk (cloud-init, EC2Launch)",
			FailedWhen: "a secret in user data or scripts cached on disk (cloud-init, EC2Launch), including earlier instances' caches baked into the image",
			Practices:  []int{12, 10},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Rotate the secret, delete the cached copies (/var/lib/cloud/instances/*/user-data.txt*, scripts/, EC2Launch UserScript files), and before creating an AMI run cloud-init clean --logs (Linux) or EC2Launch sysprep (Windows) so no instance's user data is baked into the image.",
				URL:  "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/creating-an-ami-ebs.html",
			},
		},
	}
}

// Run implements Probe.
func (UserDataProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	if env.Secrets == nil {
		return nil, errors.New("no secret detector in the probe environment")
	}
	out := liveUserData(ctx, env)
	return append(out, cachedUserData(ctx, env)...), nil
}

func liveUserData(ctx context.Context, env *Env) []Result {
	const check = "userdata-secret"
	switch {
	case env.IMDS == nil:
		return []Result{NewResult(check, NotAvailable, "", "no IMDS client")}
	case env.IMDS.Disabled():
		return []Result{NewResult(check, NotAvailable, "", metadata.ErrDisabled.Error())}
	case !env.Identity.Reachable:
		return []Result{NewResult(check, NotAvailable, "", env.Identity.Reason)}
	}
	data, err := env.IMDS.UserData(ctx)
	if errors.Is(err, metadata.ErrNotFound) {
		return []Result{NewResult(check, Passed, "", "the instance has no user data")}
	}
	if err != nil {
		return []Result{NewResult(check, NotAvailable, "", fmt.Sprintf("could not read the user data: %v", err))}
	}
	size := len(data)
	scanned := env.Secrets.ScanInput(data, env.FingerprintKey)
	findings := scanned.Findings
	data = nil
	cut := ""
	if scanned.Truncated {
		cut = fmt.Sprintf(" (decoding stopped at %d MiB; the rest was not scanned)", secrets.MaxDecoded>>20)
	}
	cut += notesClause(scanned.Notes)
	if len(findings) == 0 {
		// A bound of the cloud-config reader is a limit that cut the look: no PASS.
		status := Passed
		if scanned.Limited {
			status = Warning
		}
		return []Result{withNotes(NewResult(check, status, "", fmt.Sprintf("no secret in the user data (%d bytes, decoded)%s", size, cut)).
			With("size", size), scanned.Notes)}
	}
	out := make([]Result, 0, len(findings)+1)
	for _, f := range findings {
		reason := fmt.Sprintf("the user data holds %s at %s%s: every process that can reach IMDS, and anyone allowed ec2:DescribeInstanceAttribute, can read it", kindWords(f), describe(f), cut)
		out = append(out, withNotes(secretResult(check, f, sourceUserData, "imds:user-data", "imds:user-data", reason), scanned.Notes))
	}
	if scanned.Limited {
		out = append(out, withNotes(NewResult(check, Warning, "", strings.Join(scanned.Notes, "; ")+": the rest may hold more"), scanned.Notes))
	}
	return out
}

// notesClause is the decoder's notes as a clause for a reason sentence ("" without any).
func notesClause(notes []string) string {
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, "; ") + ")"
}

// withNotes puts the decoder's notes (what was read as text only, and why) in evidence.
func withNotes(r Result, notes []string) Result {
	if len(notes) > 0 {
		if r.Evidence == nil {
			r.Evidence = map[string]any{}
		}
		r.Evidence["notes"] = notes
	}
	return r
}
