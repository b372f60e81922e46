package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// privsepDir is the directory Debian's sshd needs before it starts (even for -T); the
// ssh.service unit creates it, which a container or CI runner without systemd never runs.
const privsepDir = "/run/sshd"

// SSHD returns the path of a real OpenSSH sshd (PATH, then /usr/sbin), ready to run: its
// privilege separation directory exists (created, as ssh.service would, when running as
// root). A missing sshd skips locally and fails under CI=true, as Tool does.
func SSHD(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("sshd")
	if err != nil {
		for _, c := range []string{"/usr/sbin/sshd", "/usr/local/sbin/sshd"} {
			if isExec(c) {
				p, err = c, nil
				break
			}
		}
	}
	if err != nil {
		Missing(t, "sshd not found in PATH or /usr/sbin (apt-get install openssh-server)")
		return ""
	}
	if p, err = filepath.Abs(p); err != nil {
		t.Fatalf("sshd path: %v", err)
	}
	if _, err := os.Stat(privsepDir); err != nil {
		if os.Geteuid() != 0 {
			Missing(t, privsepDir+" is missing and only root can create it for sshd")
			return ""
		}
		// Left in place: it is what the package's own service creates, and concurrent test
		// binaries may be using it.
		if err := os.MkdirAll(privsepDir, 0o755); err != nil {
			t.Fatalf("create %s for sshd: %v", privsepDir, err)
		}
	}
	return p
}

// HostKey writes a fresh ed25519 host key (and its .pub) at path, with ssh-keygen from the
// same OpenSSH install as sshd.
func HostKey(t testing.TB, path string) {
	t.Helper()
	kg, err := exec.LookPath("ssh-keygen")
	if err != nil {
		kg = "/usr/bin/ssh-keygen"
	}
	if out, err := exec.Command(kg, "-q", "-t", "ed25519", "-N", "", "-C", "ec2sec-test", "-f", path).CombinedOutput(); err != nil {
		Missing(t, "ssh-keygen: "+err.Error()+": "+string(out))
	}
}
