package probes

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

func TestSerialConsoleLogin(t *testing.T) {
	shadow := testdataFile(t, "console/shadow")
	locked := testdataFile(t, "console/shadow-locked")
	wants := "/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
	unit := "->/lib/systemd/system/serial-getty@.service"
	cases := []struct {
		name     string
		files    map[string]string
		procs    []procfstest.Proc
		cmdline  string // <proc>/cmdline; "" with procs nil means no procfs
		status   Status
		accounts []string
		source   string // a substring of one of the sources
	}{
		{"serial getty wanted", map[string]string{"/etc/shadow": shadow, wants: unit}, nil, "",
			Failed, []string{"admin", "olddes", "nopass"}, "ttyS0: wanted by " + wants},
		{"serial getty masked", map[string]string{"/etc/shadow": shadow, wants: unit, "/etc/systemd/system/serial-getty@ttyS0.service": "->/dev/null"}, nil, "",
			Passed, nil, ""},
		{"template masked", map[string]string{"/etc/shadow": shadow, "/etc/default/grub": testdataFile(t, "console/grub"), "/etc/systemd/system/serial-getty@.service": "->/dev/null"}, nil, "",
			Passed, nil, ""},
		{"console on the running kernel command line", map[string]string{"/etc/shadow": shadow}, []procfstest.Proc{{PID: 1, Comm: "systemd"}}, "BOOT_IMAGE=/vmlinuz root=/dev/nvme0n1p1 console=tty1 console=ttyS0,115200n8\n",
			Failed, []string{"admin", "olddes", "nopass"}, "console=ttyS0 in "},
		{"running agetty", map[string]string{"/etc/shadow": shadow}, []procfstest.Proc{{PID: 640, Comm: "agetty", Cmdline: []string{"/sbin/agetty", "-o", "-p -- \\u", "--keep-baud", "115200,57600,38400,9600", "ttyS0", "vt220"}}}, "ro quiet\n",
			Failed, []string{"admin", "olddes", "nopass"}, "ttyS0: running agetty (pid 640)"},
		{"running kernel wins over grub", map[string]string{"/etc/shadow": shadow, "/etc/default/grub": testdataFile(t, "console/grub")}, []procfstest.Proc{{PID: 1, Comm: "systemd"}}, "ro console=tty1\n",
			Passed, nil, ""},
		{"offline image: grub", map[string]string{"/etc/shadow": shadow, "/etc/default/grub": testdataFile(t, "console/grub")}, nil, "",
			Failed, []string{"admin", "olddes", "nopass"}, "console=ttyS0 in /etc/default/grub"},
		{"offline image: grub.d", map[string]string{"/etc/shadow": shadow, "/etc/default/grub.d/50-cloudimg-settings.cfg": testdataFile(t, "console/grub")}, nil, "",
			Failed, []string{"admin", "olddes", "nopass"}, "/etc/default/grub.d/50-cloudimg-settings.cfg"},
		{"offline image: boot loader entry", map[string]string{"/etc/shadow": shadow, "/boot/loader/entries/abc-6.1.0.conf": testdataFile(t, "console/loader-entry.conf")}, nil, "",
			Failed, []string{"admin", "olddes", "nopass"}, "/boot/loader/entries/abc-6.1.0.conf"},
		{"all accounts locked", map[string]string{"/etc/shadow": locked, wants: unit}, nil, "",
			Passed, []string{}, ""},
		{"shadow unreadable", map[string]string{wants: unit}, nil, "",
			NotAvailable, nil, ""},
		{"no serial getty", map[string]string{"/etc/shadow": shadow, "/etc/systemd/system/getty.target.wants/getty@tty1.service": "->/lib/systemd/system/getty@.service"}, nil, "",
			Passed, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := ""
			if c.procs != nil {
				proc = procfstest.Build(t, t.TempDir(), c.procs, map[string]string{"cmdline": c.cmdline})
			}
			rs, err := ConsoleProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, c.files)), withProc(proc)))
			if err != nil {
				t.Fatal(err)
			}
			r := one(t, rs, "serial-console-login")
			if r.Status != c.status {
				t.Fatalf("status %s (%s), want %s; evidence %v", r.Status, r.Reason, c.status, r.Evidence)
			}
			if c.accounts != nil {
				if got, _ := r.Evidence["accounts"].([]string); !slices.Equal(got, c.accounts) {
					t.Errorf("accounts %v, want %v", got, c.accounts)
				}
			}
			if c.source != "" {
				srcs, _ := r.Evidence["sources"].([]string)
				if !slices.ContainsFunc(srcs, func(s string) bool { return strings.Contains(s, c.source) }) {
					t.Errorf("sources %v lack %q", srcs, c.source)
				}
			}
			if c.status == Failed {
				if got, _ := r.Evidence["empty_password_accounts"].([]string); !slices.Equal(got, []string{"nopass"}) {
					t.Errorf("empty password accounts %v", got)
				}
				for _, s := range []string{"$6$", "$y$", "NOTAREALHASH", "abJnggxhB", "fakesalt"} {
					if strings.Contains(evidenceJSON(t, rs)+r.Reason, s) {
						t.Errorf("a password hash (%q) leaked into the result", s)
					}
				}
			}
		})
	}
}

func TestUsableHash(t *testing.T) {
	for h, want := range map[string]bool{
		"$6$salt$hash": true, "$y$j9T$s$h": true, "abJnggxhB/yWI": true,
		"!$6$salt$hash": false, "*": false, "!!": false, "!": false, "x": false, "NP": false, "*LK*": false, "$1": false,
	} {
		if usableHash(h) != want {
			t.Errorf("usableHash(%q) = %v", h, !want)
		}
	}
}
