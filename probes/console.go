package probes

import (
	"context"
	"errors"
	"fmt"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// ConsoleProbe looks at the serial console from inside: a getty serving it plus an account
// with a usable password is a login prompt for anyone allowed to open the EC2 serial console.
type ConsoleProbe struct{}

// Name implements Probe.
func (ConsoleProbe) Name() string { return "console" }

// IdentityFree tells the scan this probe reads only the host's files and processes, never
// Env.Identity or Env.EC2: it starts without waiting for IMDS.
func (ConsoleProbe) IdentityFree() bool { return true }

// Checks implements Probe.
func (ConsoleProbe) Checks() []Check {
	return []Check{
		{
			ID: "serial-console-login", Probe: "console", Severity: Medium,
			Title:      "A getty serves the serial console and an account has a usable password",
			FailedWhen: "a getty serves the serial console and an account has a usable password",
			Practices:  []int{11},
			Remediation: Remediation{
				Text: "Lock the passwords of accounts that do not need one (passwd -l <user>), or stop the serial getty (systemctl mask serial-getty@ttyS0.service) where break-glass access is not wanted; keep EC2 serial console access disabled for the account (aws ec2 disable-serial-console-access).",
				URL:  "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-serial-console.html",
			},
		},
	}
}

// serialTTY names the serial consoles EC2's serial console attaches to (ttyS0 on x86 and
// Graviton; ttyAMA on other arm64 kernels).
var serialTTY = regexp.MustCompile(`^(ttyS|ttyAMA)[0-9]+$`)

// Run implements Probe.
func (ConsoleProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	const check = "serial-console-login"
	if runtime.GOOS == "windows" {
		// Windows serves the serial console through EMS/SAC (bcdedit /ems), not a getty.
		return nil, errors.New("the serial console of Windows (EMS/SAC) is not examined: only Linux gettys are")
	}
	ttys, sources := serialGettys(env)
	if len(ttys) == 0 {
		return []Result{NewResult(check, Passed, "", "no getty serves a serial console").
			With("looked_at", consoleLookedAt(env))}, nil
	}
	accounts, empty, err := passwordAccounts(env)
	if err != nil {
		return []Result{NewResult(check, NotAvailable, "", fmt.Sprintf("a getty serves %s, but /etc/shadow cannot be read: %v", strings.Join(ttys, ", "), err)).
			With("serial_consoles", ttys).With("sources", sources)}, nil
	}
	r := NewResult(check, Passed, "", fmt.Sprintf("a getty serves %s, but no account has a usable password", strings.Join(ttys, ", "))).
		With("serial_consoles", ttys).With("sources", sources).With("accounts", nonNil(accounts))
	if len(accounts) == 0 {
		return []Result{r}, nil
	}
	r.Status = Failed
	r.Reason = fmt.Sprintf("a getty serves %s and %d account(s) can log in with a password there: %s", strings.Join(ttys, ", "), len(accounts), strings.Join(accounts, ", "))
	if len(empty) > 0 {
		r = r.With("empty_password_accounts", empty)
		r.Reason += fmt.Sprintf(" (empty password, no password needed where PAM allows nullok: %s)", strings.Join(empty, ", "))
	}
	return []Result{r}, nil
}

func consoleLookedAt(env *Env) []string {
	l := []string{"systemd wants links for serial-getty@", "/etc/default/grub", "/boot/loader/entries", "/etc/kernel/cmdline"}
	if env.Proc != "" {
		l = append(l, "running getty processes", path.Join(env.Proc, "cmdline"))
	}
	return l
}

// serialGettys returns the serial consoles a getty serves and where each was seen: a running
// getty on it, or (unless its unit is masked) a serial-getty@ wants link or a console= kernel
// argument, which systemd's getty generator turns into a serial getty.
func serialGettys(env *Env) (ttys, sources []string) {
	add := func(tty, src string) {
		if !slices.Contains(ttys, tty) {
			ttys = append(ttys, tty)
		}
		sources = append(sources, tty+": "+src)
	}
	if env.Proc != "" {
		table := env.procTable()
		p := table.FS()
		procs, _ := table.Procs()
		for _, pr := range procs {
			pid, comm := pr.PID, pr.Comm
			if !strings.Contains(comm, "getty") {
				continue
			}
			args, _ := p.Cmdline(pid)
			for _, a := range args {
				if t := strings.TrimPrefix(a, "/dev/"); serialTTY.MatchString(t) {
					add(t, fmt.Sprintf("running %s (pid %d)", comm, pid))
				}
			}
		}
	}
	configured := map[string][]string{}
	for _, dir := range systemdUnitDirs {
		links, _ := env.FS.Glob(path.Join(dir, "*.wants", "serial-getty@*.service"), 64)
		for _, l := range links {
			inst := strings.TrimSuffix(strings.TrimPrefix(path.Base(l), "serial-getty@"), ".service")
			if serialTTY.MatchString(inst) {
				configured[inst] = append(configured[inst], "wanted by "+l)
			}
		}
	}
	for _, c := range kernelCmdlines(env) {
		for _, arg := range strings.Fields(c.args) {
			v, ok := strings.CutPrefix(arg, "console=")
			if !ok {
				continue
			}
			tty, _, _ := strings.Cut(v, ",")
			if serialTTY.MatchString(tty) {
				configured[tty] = append(configured[tty], "console="+tty+" in "+c.source)
			}
		}
	}
	for _, tty := range sortedKeys(configured) {
		if unitMasked(env, "serial-getty@"+tty+".service") || unitMasked(env, "serial-getty@.service") {
			sources = append(sources, tty+": serial-getty masked")
			continue
		}
		for _, s := range configured[tty] {
			add(tty, s)
		}
	}
	return ttys, sources
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// unitMasked reports a unit linked to /dev/null in /etc or /run.
func unitMasked(env *Env, unit string) bool {
	for _, dir := range []string{"/etc/systemd/system", "/run/systemd/system"} {
		if t, err := env.FS.Readlink(path.Join(dir, unit)); err == nil && t == "/dev/null" {
			return true
		}
	}
	return false
}

type cmdline struct{ source, args string }

// kernelCmdlines returns the kernel command line: the running one from procfs, else what the
// boot loader configuration would pass (for an offline image).
func kernelCmdlines(env *Env) []cmdline {
	if env.Proc != "" {
		if b, _, err := env.procTable().FS().ReadFile("cmdline", 64<<10); err == nil {
			return []cmdline{{path.Join(env.Proc, "cmdline"), string(b)}}
		}
	}
	var out []cmdline
	read := func(name string) string {
		b, _, err := env.FS.ReadFile(name, 256<<10)
		if err != nil {
			return ""
		}
		return string(b)
	}
	grubs := append([]string{"/etc/default/grub"}, globOrNil(env, "/etc/default/grub.d/*.cfg")...)
	for _, g := range grubs {
		for _, line := range strings.Split(read(g), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if ok && (k == "GRUB_CMDLINE_LINUX" || k == "GRUB_CMDLINE_LINUX_DEFAULT") {
				out = append(out, cmdline{g, strings.Trim(v, `"'`)})
			}
		}
	}
	for _, e := range globOrNil(env, "/boot/loader/entries/*.conf") {
		for _, line := range strings.Split(read(e), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "options"); ok {
				out = append(out, cmdline{e, v})
			}
		}
	}
	if s := read("/etc/kernel/cmdline"); s != "" {
		out = append(out, cmdline{"/etc/kernel/cmdline", s})
	}
	return out
}

func globOrNil(env *Env, pattern string) []string {
	m, _ := env.FS.Glob(pattern, 256)
	return m
}

// passwordAccounts returns the accounts of /etc/shadow that can log in with a password (a
// crypt hash, or an empty field), and which of those need none. Hashes never leave here.
func passwordAccounts(env *Env) (usable, empty []string, err error) {
	b, truncated, err := env.FS.ReadFile("/etc/shadow", 4<<20)
	if err != nil {
		return nil, nil, err
	}
	if truncated {
		return nil, nil, fmt.Errorf("/etc/shadow is larger than 4 MiB")
	}
	today := int(env.Now().Unix() / 86400)
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) < 2 || f[0] == "" || strings.HasPrefix(f[0], "#") {
			continue
		}
		name, hash := f[0], f[1]
		if len(f) >= 8 && f[7] != "" {
			if exp, err := strconv.Atoi(f[7]); err == nil && exp <= today {
				continue // the account has expired
			}
		}
		switch {
		case hash == "":
			usable = append(usable, name)
			empty = append(empty, name)
		case usableHash(hash):
			usable = append(usable, name)
		}
	}
	return usable, empty, nil
}

// usableHash reports a crypt(3) hash some password can match: "$id$..." or classic 13-character
// DES. Locked ("!" or "*" prefixes, "!!") and placeholder ("x", "NP", "LK") values cannot.
func usableHash(h string) bool {
	if strings.HasPrefix(h, "!") || strings.HasPrefix(h, "*") {
		return false
	}
	if strings.HasPrefix(h, "$") {
		return len(h) > 3
	}
	return len(h) == 13 && strings.Trim(h, "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == ""
}
