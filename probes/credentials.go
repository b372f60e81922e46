package probes

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ec2sec/ec2sec/probes/secrets"
)

// CredentialsProbe looks for credentials stored on the host: AWS access keys in users'
// files, other secrets in known config locations, AWS secret keys in process environments,
// and credential files that other users can read.
type CredentialsProbe struct{}

// Name implements Probe.
func (CredentialsProbe) Name() string { return "credentials" }

// IdentityFree tells the scan this probe reads only the host's files and processes, never
// Env.Identity or Env.EC2: it starts without waiting for IMDS.
func (CredentialsProbe) IdentityFree() bool { return true }

// UsesSecrets tells the scan this probe needs Env.Secrets and Env.FingerprintKey.
func (CredentialsProbe) UsesSecrets() bool { return true }

const credDocs = "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html#bp-workloads-use-roles"

// Checks implements Probe.
func (CredentialsProbe) Checks() []Check {
	return []Check{
		{
			ID: "cred-long-lived-key", Probe: "credentials", Severity: Critical,
			Title:      "A long-term AWS access key (AKIA…) is stored in a file on the host",
			FailedWhen: "a long-term access key (AKIA…) is stored in a file on disk",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Deactivate and delete the access key in IAM (aws iam update-access-key --status Inactive, then delete-access-key), remove it from the file, and give the workload an instance profile role instead.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-session-key", Probe: "credentials", Severity: Medium,
			Title:      "A temporary AWS access key (ASIA…) with its secret is stored on disk",
			FailedWhen: "a temporary key (ASIA…) with its secret is stored on disk",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Remove the stored session credentials; let the SDK fetch them from the instance profile, credential_process or IAM Identity Center (sso_*) when needed, and revoke the role's active sessions if they may have leaked.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-process-env", Probe: "credentials", Severity: High,
			Title:      "A running process holds AWS secret keys in its environment",
			FailedWhen: "a running process holds AWS secret keys in its environment",
			Practices:  []int{4},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Stop passing AWS_SECRET_ACCESS_KEY to the process (unit Environment=, container env, shell profile); let the SDK use the instance profile. Rotate the key, since /proc and crash dumps expose environments.",
				URL:  credDocs,
			},
		},
		{
			ID: "cred-file-permissions", Probe: "credentials", Severity: High,
			Title:      "A file holding credentials is readable by group or other, or owned by another user",
			FailedWhen: "a file holding credentials is readable by group or other, or owned by another user",
			Practices:  []int{4},
			Remediation: Remediation{
				Text: "chmod 600 the file and chown it to the user it belongs to (root for system files); better, remove the credentials from it.",
				URL:  "https://docs.aws.amazon.com/cli/latest/userguide/cli-configure-files.html",
			},
		},
		{
			ID: "secret-in-local-file", Probe: "credentials", Severity: High,
			Title:      "A secret (password, token, private key) is stored in a known config location",
			FailedWhen: "any other secret (gitleaks rules plus ours) in a known config location",
			Practices:  []int{4, 12},
			Exposure:   true,
			Remediation: Remediation{
				Text: "Rotate the secret and move it to AWS Secrets Manager or SSM Parameter Store (SecureString), fetched at run time with the instance role.",
				URL:  "https://docs.aws.amazon.com/secretsmanager/latest/userguide/intro.html",
			},
		},
	}
}

type credState struct {
	env       *Env
	results   []Result
	scanned   int
	bad       unreadable
	skipped   []string // links to other users' files, not read
	odd       skips    // FIFOs, devices, link loops and partly read files, to say so
	permsOK   bool     // the platform tells file owners
	permsRan  int
	unread    []string       // files not looked at: the probe's time ran out first
	cut       map[string]int // findings not reported, by check (caps)
	cutFiles  []string       // files some of whose findings were not reported
	stopped   []string       // files not scanned to their end (too many findings early on)
	limits    []string       // what a limit left out of the look (globs, users, unit files)
	queueFull bool
	perCheck  map[string]int // results kept, by check
	seen      map[string]bool
	queue     []credFile
	// memo holds the findings of every distinct content scanned in this scan: skeleton files
	// (.bashrc, .profile, .aws/config from /etc/skel) are the same in most homes, and the
	// same bytes always give the same findings. Findings hold no secret.
	memoMu sync.Mutex
	memo   map[[sha256.Size]byte][]secrets.Finding
}

// Run implements Probe. The steps: stop a little before the deadline (beforeDeadline), read
// passwd, read the process environments and the files (readAll), then say what the files
// held and what a limit cut (fileResults).
func (CredentialsProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	if env.Secrets == nil {
		return nil, errors.New("no secret detector in the probe environment")
	}
	st := &credState{env: env, seen: map[string]bool{}, memo: map[[sha256.Size]byte][]secrets.Finding{}, cut: map[string]int{}, perCheck: map[string]int{}}
	ctx, cancel := beforeDeadline(ctx)
	defer cancel()
	users, passwdErr := readPasswd(env)
	if n := usersLeftOut(users); n > 0 {
		st.limits = append(st.limits, fmt.Sprintf("the homes of %s of /etc/passwd after the first %d were not looked at", plural(n, "more user", "more users"), maxUsers))
	}
	procOut := st.readAll(ctx, users)
	return append(st.fileResults(users, passwdErr), procOut...), nil
}

// beforeDeadline stops starting new files and processes a little before the probe's
// deadline: the probe then returns what it read (the scan would otherwise abandon it and
// keep nothing), and only what it had not read is unknown.
func beforeDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx, func() {}
	}
	margin := min(time.Until(dl)/5, 5*time.Second)
	return context.WithDeadline(ctx, dl.Add(-margin))
}

// readAll reads the process environments and the files of users, and the files units name
// with EnvironmentFile=, adding up what the files held in st; it returns the
// cred-process-env results.
func (st *credState) readAll(ctx context.Context, users []passwdUser) []Result {
	// Process environments are read by the same readers as the files, before them (on a host
	// with thousands of processes they are half of this probe's time): whichever reader is
	// free takes the next ones, so both finish together. Processes first: a user's files
	// written to be slow to scan cannot leave cred-process-env without an answer.
	pe, procOut := newProcEnvs(st.env, users) // without a procfs, procOut says so
	st.queue = st.credFiles(users)
	// The first round reads the files and the processes; the next ones the files that units
	// load with EnvironmentFile=, found in the round before.
	for first, done := true, 0; first || done < len(st.queue); first = false {
		batch := st.queue[done:]
		done = len(st.queue)
		var pids []int
		if first && pe != nil {
			pids = pe.all
		}
		files, procs := st.scan(ctx, batch, pe, pids)
		for i, sc := range files {
			st.merge(batch[i], &sc)
		}
		if first && pe != nil {
			procOut = pe.results(pids, procs)
		}
	}
	return procOut
}

// credFileChecks are the checks the files answer for what they hold, and credNone what
// each says when it found nothing.
var (
	credFileChecks = []string{"cred-long-lived-key", "cred-session-key", "secret-in-local-file"}
	credNone       = map[string]string{
		"cred-long-lived-key":  "no long-term access key",
		"cred-session-key":     "no temporary access key",
		"secret-in-local-file": "no secret",
	}
)

// fileResults is what the files gave: their findings, then per check a WARNING or
// NOT_AVAILABLE for what a limit cut (limitResults), and a result for each check nothing
// was found for (nothingFoundResults).
func (st *credState) fileResults(users []passwdUser, passwdErr error) []Result {
	out := st.results
	where := st.where(users, passwdErr)
	st.odd.annotate(out)
	out = st.limitResults(out, where)
	return st.nothingFoundResults(out, where)
}

// where says what the probe looked at, and what it did not read, for the messages.
func (st *credState) where(users []passwdUser, passwdErr error) string {
	where := fmt.Sprintf("%s of %s", plural(st.scanned, "credential or config file", "credential and config files"), plural(len(users), "user", "users"))
	if passwdErr != nil {
		where += fmt.Sprintf(" (users unknown: %v)", passwdErr)
	}
	if len(st.skipped) > 0 {
		where += fmt.Sprintf("; not read: %s (links or hard links to another user's file)", joinMax(st.skipped, 3))
	}
	return where + st.odd.String()
}

// nothingFoundResults adds, for every check with no result in out, a PASSED saying what was looked
// at, or a NOT_AVAILABLE saying what could not be.
func (st *credState) nothingFoundResults(out []Result, where string) []Result {
	for _, c := range credFileChecks {
		if slices.ContainsFunc(out, func(r Result) bool { return r.Check == c }) {
			continue
		}
		if st.bad.n > 0 {
			out = append(out, NewResult(c, NotAvailable, "", fmt.Sprintf("could not read every credential location (%s); %s in the %s read", st.bad, credNone[c], where)))
			continue
		}
		out = append(out, NewResult(c, Passed, "", fmt.Sprintf("%s in %s", credNone[c], where)).With("files", st.scanned))
	}
	if !slices.ContainsFunc(out, func(r Result) bool { return r.Check == "cred-file-permissions" }) {
		switch {
		case !st.permsOK && st.permsRan > 0:
			out = append(out, NewResult("cred-file-permissions", NotAvailable, "", "this platform does not report file owners and modes; ACLs are not checked"))
		case st.permsRan == 0:
			out = append(out, NewResult("cred-file-permissions", Passed, "", "no file holds credentials"))
		default:
			out = append(out, NewResult("cred-file-permissions", Passed, "", fmt.Sprintf("%s with credentials, none readable by group or other or owned by another user", plural(st.permsRan, "file", "files"))))
		}
	}
	return out
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
