package service

import (
	"bytes"
	"strings"
	"testing"
	"time"

	ksvc "github.com/kardianos/service"

	"github.com/ec2sec/ec2sec/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// fake is a service manager in memory that records the calls made to it.
type fake struct {
	installed, running bool
	markedForDeletion  int // Install fails this many more times, as on Windows after a delete
	calls              []string
}

func (f *fake) Install() error {
	if f.markedForDeletion > 0 {
		f.markedForDeletion--
		return errorString("marked for deletion")
	}
	if f.installed {
		return errorString("already exists")
	}
	f.calls = append(f.calls, "install")
	f.installed = true
	return nil
}
func (f *fake) Uninstall() error {
	if !f.installed {
		return errorString("not installed")
	}
	f.calls = append(f.calls, "uninstall")
	f.installed = false
	return nil
}
func (f *fake) Start() error { f.calls = append(f.calls, "start"); f.running = true; return nil }
func (f *fake) Stop() error  { f.calls = append(f.calls, "stop"); f.running = false; return nil }
func (f *fake) Status() (ksvc.Status, error) {
	switch {
	case !f.installed:
		return ksvc.StatusUnknown, ksvc.ErrNotInstalled
	case f.running:
		return ksvc.StatusRunning, nil
	}
	return ksvc.StatusStopped, nil
}
func (f *fake) Platform() string { return "fake" }

type errorString string

func (e errorString) Error() string { return string(e) }

func fakeHost(packaged string) host {
	return host{installed: statusInstalled, packaged: func() string { return packaged }}
}

func do(t *testing.T, f *fake, h host, action string) (int, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := control(f, h, action, "/usr/bin/ec2sec", &out, &errb)
	return code, out.String() + errb.String()
}

func TestInstallIsIdempotent(t *testing.T) {
	f := &fake{}
	h := fakeHost("")
	if code, out := do(t, f, h, "install"); code != ExitOK || !f.installed || f.running {
		t.Fatalf("fresh install: code %d, state %+v\n%s", code, f, out)
	}
	if code, out := do(t, f, h, "install"); code != ExitOK || !f.installed || f.running {
		t.Fatalf("re-install of a stopped service: code %d, state %+v\n%s", code, f, out)
	}
	f.running, f.calls = true, nil
	code, out := do(t, f, h, "install")
	if code != ExitOK || !f.installed || !f.running {
		t.Fatalf("re-install of a running service: code %d, state %+v\n%s", code, f, out)
	}
	if got := strings.Join(f.calls, ","); got != "stop,uninstall,install,start" {
		t.Errorf("re-install of a running service called %s", got)
	}
}

func TestUninstallIsIdempotent(t *testing.T) {
	f := &fake{installed: true, running: true}
	h := fakeHost("")
	if code, out := do(t, f, h, "uninstall"); code != ExitOK || f.installed || f.running {
		t.Fatalf("uninstall: code %d, state %+v\n%s", code, f, out)
	}
	code, out := do(t, f, h, "uninstall")
	if code != ExitOK || !strings.Contains(out, "not installed") {
		t.Fatalf("second uninstall: code %d\n%s", code, out)
	}
}

func TestStatusCodes(t *testing.T) {
	h := fakeHost("")
	for _, c := range []struct {
		f    fake
		code int
		word string
	}{
		{fake{}, ExitNotInstalled, "not installed"},
		{fake{installed: true}, ExitStopped, "stopped"},
		{fake{installed: true, running: true}, ExitOK, "running"},
	} {
		f := c.f
		if code, out := do(t, &f, h, "status"); code != c.code || !strings.Contains(out, c.word) {
			t.Errorf("status of %+v: code %d, %q; want %d, %q", c.f, code, out, c.code, c.word)
		}
	}
}

func TestPackagedUnit(t *testing.T) {
	f := &fake{}
	h := fakeHost("/usr/lib/systemd/system/ec2sec.service")
	if code, out := do(t, f, h, "install"); code != ExitOK || f.installed || !strings.Contains(out, "system package") {
		t.Errorf("install over a packaged unit: code %d, state %+v\n%s", code, f, out)
	}
	if code, out := do(t, f, h, "uninstall"); code != ExitFailed || !strings.Contains(out, "remove the package") {
		t.Errorf("uninstall of a packaged unit: code %d\n%s", code, out)
	}
}

func TestInstallRefusesTmp(t *testing.T) {
	f := &fake{}
	var out, errb bytes.Buffer
	if code := control(f, fakeHost(""), "install", "/tmp/x/ec2sec", &out, &errb); code != ExitFailed || f.installed {
		t.Errorf("install from /tmp: code %d, installed %v", code, f.installed)
	}
	if !strings.Contains(errb.String(), "PrivateTmp") {
		t.Errorf("no reason given: %q", errb.String())
	}
}

func TestCommandUsage(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Command("restart-everything", &out, &errb); code != ExitUsage {
		t.Errorf("unknown action: code %d", code)
	}
}

func TestReinstallWaitsForDeletion(t *testing.T) {
	f := &fake{installed: true, markedForDeletion: 2}
	h := fakeHost("")
	h.settle = 5 * time.Second
	if code, out := do(t, f, h, "install"); code != ExitOK || !f.installed {
		t.Fatalf("re-install with a pending deletion: code %d\n%s", code, out)
	}
	// Without the wait (Linux), the error is reported at once.
	f = &fake{installed: true, markedForDeletion: 1}
	if code, _ := do(t, f, fakeHost(""), "install"); code != ExitFailed {
		t.Errorf("re-install without settle: code %d, want %d", code, ExitFailed)
	}
}
