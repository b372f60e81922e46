//go:build unix

package probes

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretProbesSayWhatTheySkipped: FIFOs, link loops and files larger than the read limit
// used to be passed over in silence, so a PASSED result claimed more than was seen.
func TestSecretProbesSayWhatTheySkipped(t *testing.T) {
	root := t.TempDir()
	buildTree(t, root, []entry{
		{path: "/etc/passwd", content: "root:x:0:0:root:/root:/bin/bash\n"},
		{path: "/root/.aws/credentials", fifo: true},
		{path: "/root/.bashrc", link: ".profile"},
		{path: "/root/.profile", link: ".bashrc"},
		{path: "/var/lib/cloud/instances/i-1/user-data.txt", fifo: true},
		{path: "/var/lib/cloud/instances/i-2/user-data.txt", link: "/etc/passwd"},
	})
	big := filepath.Join(root, "root/.netrc")
	os.WriteFile(big, []byte("machine h login u\n"), 0o600)
	os.Truncate(big, 3*maxSecretFile)
	cached := filepath.Join(root, "var/lib/cloud/instances/i-3/user-data.txt")
	os.MkdirAll(filepath.Dir(cached), 0o755)
	os.WriteFile(cached, []byte("#!/bin/sh\n"), 0o600)
	os.Truncate(cached, 3*maxSecretFile)

	env := testEnv(t, onRoot(root), withSecrets())
	rs, err := CredentialsProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	got := checkIndex(t, rs)["cred-long-lived-key"].Reason
	for _, want := range []string{"not opened: /root/.aws/credentials (FIFO", "links not followed: /root/.bashrc", "only the first 1 MiB read of /root/.netrc"} {
		if !strings.Contains(got, want) {
			t.Errorf("credentials reason %q does not say %q", got, want)
		}
	}
	rs, err = UserDataProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	got = checkIndex(t, rs)["userdata-cached-secret"].Reason
	for _, want := range []string{"not opened: /var/lib/cloud/instances/i-1/user-data.txt", "links not followed: /var/lib/cloud/instances/i-2/user-data.txt", "only the first 1 MiB read of /var/lib/cloud/instances/i-3/user-data.txt"} {
		if !strings.Contains(got, want) {
			t.Errorf("user data reason %q does not say %q", got, want)
		}
	}
}
