// Package service installs and controls ec2sec as an OS service through kardianos/service:
// systemd on Linux (with ec2sec's hardened unit, systemd/ec2sec.service, as the template) and
// the Service Control Manager on Windows. `ec2sec service install|uninstall|start|stop|status`
// is Command; a `run` started by the Windows SCM hands control to Run.
package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	ksvc "github.com/kardianos/service"
)

// Name is the service's name: the systemd unit ec2sec.service, the Windows service ec2sec.
const Name = "ec2sec"

// Actions are the verbs of `ec2sec service`.
var Actions = []string{"install", "uninstall", "start", "stop", "status"}

// Exit codes of `ec2sec service`; status follows the LSB init-script convention.
const (
	ExitOK           = 0 // done; for status: running
	ExitFailed       = 1 // the action failed
	ExitUsage        = 2 // unknown action or bad arguments
	ExitStopped      = 3 // status: installed, not running
	ExitNotInstalled = 4 // status: not installed
)

// controller is the part of kardianos/service.Service that Command drives, so the install
// logic can be tested without a service manager.
type controller interface {
	Install() error
	Uninstall() error
	Start() error
	Stop() error
	Status() (ksvc.Status, error)
	Platform() string
}

// host is what Command needs to know about the machine, beyond the service manager.
type host struct {
	// installed reports whether a service of ours is installed (one Install would collide with).
	installed func(c controller) (bool, error)
	// packaged returns the path of a unit installed by the deb/rpm package, or "".
	packaged func() string
	// adjust, when set, runs after Install (installed true) and after Uninstall (false): on
	// Linux it adds or removes the drop-in a systemd before 235 needs (docs/install.md).
	adjust func(installed bool, stdout io.Writer) error
	// settle is how long a re-install keeps trying Install after Uninstall: the Windows SCM
	// deletes a service only once every handle to it is closed ("marked for deletion").
	settle time.Duration
}

// Config returns the kardianos configuration for a service that runs `exe run`.
func Config(exe string) (*ksvc.Config, error) {
	opt := ksvc.KeyValue{}
	if err := platformOptions(opt); err != nil {
		return nil, err
	}
	return &ksvc.Config{
		Name:        Name,
		DisplayName: "ec2sec host security agent",
		Description: "Looks at this instance from inside and reports to CloudWatch Logs and Security Hub.",
		Executable:  exe,
		Arguments:   []string{"run"},
		Option:      opt,
	}, nil
}

// Command runs `ec2sec service ACTION` and returns its exit code; messages go to stdout and
// errors to stderr.
func Command(action string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ec2sec service %s: %v\n", action, err)
		return ExitFailed
	}
	if !validAction(action) {
		fmt.Fprintf(stderr, "ec2sec service: unknown action %q (want %s)\n", action, strings.Join(Actions, ", "))
		return ExitUsage
	}
	exe, err := os.Executable()
	if err != nil {
		return fail(fmt.Errorf("find this program's path: %w", err))
	}
	if exe, err = filepath.EvalSymlinks(exe); err != nil {
		return fail(fmt.Errorf("resolve this program's path: %w", err))
	}
	cfg, err := Config(exe)
	if err != nil {
		return fail(err)
	}
	s, err := ksvc.New(noop{}, cfg)
	if err != nil {
		return fail(fmt.Errorf("%w (platform %q)", err, ksvc.Platform()))
	}
	if err := supported(s.Platform()); err != nil {
		return fail(err)
	}
	return control(s, platformHost(), action, exe, stdout, stderr)
}

func validAction(a string) bool {
	for _, v := range Actions {
		if a == v {
			return true
		}
	}
	return false
}

// control carries out action on c.
func control(c controller, h host, action, exe string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ec2sec service %s: %v\n", action, err)
		return ExitFailed
	}
	switch action {
	case "install":
		if err := checkExecutable(exe, stderr); err != nil {
			return fail(err)
		}
		if err := install(c, h, exe, stdout); err != nil {
			return fail(err)
		}
	case "uninstall":
		if err := uninstall(c, h, stdout); err != nil {
			return fail(err)
		}
	case "start":
		if err := c.Start(); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s started\n", Name)
	case "stop":
		if err := c.Stop(); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "%s stopped\n", Name)
	case "status":
		st, err := c.Status()
		switch {
		case errors.Is(err, ksvc.ErrNotInstalled):
			fmt.Fprintf(stdout, "%s: not installed\n", Name)
			return ExitNotInstalled
		case err != nil:
			return fail(err)
		case st == ksvc.StatusRunning:
			fmt.Fprintf(stdout, "%s: running\n", Name)
		case st == ksvc.StatusStopped:
			fmt.Fprintf(stdout, "%s: stopped\n", Name)
			return ExitStopped
		default:
			fmt.Fprintf(stdout, "%s: unknown state\n", Name)
			return ExitFailed
		}
	}
	return ExitOK
}

// install installs the service, replacing an existing installation of ours: re-running it is
// how an upgrade or a moved binary takes effect, and it leaves the service running if it was.
func install(c controller, h host, exe string, stdout io.Writer) error {
	installed, err := h.installed(c)
	if err != nil {
		return err
	}
	if !installed {
		if p := h.packaged(); p != "" {
			// The deb/rpm owns the unit and enabled it; a second unit in /etc would shadow it.
			fmt.Fprintf(stdout, "%s is installed by the system package (%s); nothing to do\n", Name, p)
			return nil
		}
	}
	running := false
	if installed {
		st, err := c.Status()
		running = err == nil && st == ksvc.StatusRunning
		if running {
			if err := c.Stop(); err != nil {
				return fmt.Errorf("stop the running service before re-installing: %w", err)
			}
		}
		if err := c.Uninstall(); err != nil {
			return fmt.Errorf("remove the previous installation: %w", err)
		}
	}
	err = c.Install()
	for deadline := time.Now().Add(h.settle); err != nil && installed && time.Now().Before(deadline); {
		time.Sleep(500 * time.Millisecond)
		err = c.Install()
	}
	if err != nil {
		return err
	}
	if h.adjust != nil {
		if err := h.adjust(true, stdout); err != nil {
			return err
		}
	}
	verb := "installed"
	if installed {
		verb = "re-installed"
	}
	fmt.Fprintf(stdout, "%s %s (%s): runs %s run at boot\n", Name, verb, c.Platform(), exe)
	if running {
		if err := c.Start(); err != nil {
			return fmt.Errorf("start it again: %w", err)
		}
		fmt.Fprintf(stdout, "%s started again\n", Name)
	} else {
		fmt.Fprintf(stdout, "start it now with: %s service start\n", exe)
	}
	return nil
}

// uninstall stops and removes the service; with nothing of ours installed it succeeds, so
// uninstall scripts can run it unconditionally.
func uninstall(c controller, h host, stdout io.Writer) error {
	installed, err := h.installed(c)
	if err != nil {
		return err
	}
	if !installed {
		if p := h.packaged(); p != "" {
			return fmt.Errorf("%s is installed by the system package (%s): remove the package instead (apt-get remove ec2sec, or dnf/yum remove ec2sec)", Name, p)
		}
		fmt.Fprintf(stdout, "%s is not installed; nothing to do\n", Name)
		return nil
	}
	if st, err := c.Status(); err == nil && st == ksvc.StatusRunning {
		if err := c.Stop(); err != nil {
			return fmt.Errorf("stop: %w", err)
		}
	}
	if err := c.Uninstall(); err != nil {
		return err
	}
	if h.adjust != nil {
		if err := h.adjust(false, stdout); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "%s uninstalled\n", Name)
	return nil
}

// checkExecutable refuses binaries the service could not run: the unit's PrivateTmp hides
// /tmp and /var/tmp, and /dev/shm is private too.
func checkExecutable(exe string, stderr io.Writer) error {
	for _, d := range []string{"/tmp/", "/var/tmp/", "/dev/shm/"} {
		if strings.HasPrefix(exe, d) {
			return fmt.Errorf("%s is under %s, which the service cannot see (PrivateTmp); copy it to /usr/local/bin first", exe, d)
		}
	}
	for _, d := range []string{"/home/", "/root/"} {
		if strings.HasPrefix(exe, d) {
			fmt.Fprintf(stderr, "ec2sec service install: warning: %s is in a home directory; the service runs as an unprivileged user and may not be able to execute it (use /usr/local/bin)\n", exe)
		}
	}
	return nil
}

// statusInstalled is the installed check that asks the service manager.
func statusInstalled(c controller) (bool, error) {
	_, err := c.Status()
	if errors.Is(err, ksvc.ErrNotInstalled) {
		return false, nil
	}
	return true, nil
}

// noop is the kardianos Interface for the control commands, which never run the service.
type noop struct{}

func (noop) Start(ksvc.Service) error { return nil }
func (noop) Stop(ksvc.Service) error  { return nil }

// Run runs the agent loop fn. Started by the Windows Service Control Manager, it reports to
// the SCM and cancels fn's context when the SCM asks the service to stop; everywhere else
// (systemd sends SIGTERM, which the caller's ctx already handles) it just calls fn.
func Run(ctx context.Context, fn func(context.Context) error) error {
	if !underSCM() {
		return fn(ctx)
	}
	cfg, err := Config("")
	if err != nil {
		return err
	}
	p := &program{fn: fn, parent: ctx, done: make(chan error, 1)}
	s, err := ksvc.New(p, cfg)
	if err != nil {
		return err
	}
	if err := s.Run(); err != nil {
		return err
	}
	return p.err
}

// program adapts fn to kardianos's Start/Stop callbacks.
type program struct {
	fn     func(context.Context) error
	parent context.Context
	cancel context.CancelFunc
	done   chan error
	err    error
}

func (p *program) Start(ksvc.Service) error {
	ctx, cancel := context.WithCancel(p.parent)
	p.cancel = cancel
	go func() {
		err := p.fn(ctx)
		if ctx.Err() == nil {
			// The agent stopped by itself: exit non-zero so the SCM's recovery (restart after a
			// minute) takes over, rather than leave a "running" service that does nothing.
			fmt.Fprintf(os.Stderr, "ec2sec run: stopped unexpectedly: %v\n", err)
			os.Exit(1)
		}
		p.done <- err
	}()
	return nil
}

func (p *program) Stop(ksvc.Service) error {
	p.cancel()
	p.err = <-p.done
	return nil
}
