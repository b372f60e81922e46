package probes

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

// ubuntuSSH is an Ubuntu cloud image's ssh configuration (testdata/sshd/ubuntu): cloud-init's
// 50-cloud-init.conf sorts before 60-cloudimg-settings.conf, so its "yes" wins.
func ubuntuSSH(t *testing.T) map[string]string {
	return map[string]string{
		"/usr/sbin/sshd":                                      "ELF",
		"/etc/ssh/sshd_config":                                testdataFile(t, "sshd/ubuntu/sshd_config"),
		"/etc/ssh/sshd_config.d/50-cloud-init.conf":           testdataFile(t, "sshd/ubuntu/50-cloud-init.conf"),
		"/etc/ssh/sshd_config.d/60-cloudimg-settings.conf":    testdataFile(t, "sshd/ubuntu/60-cloudimg-settings.conf"),
		"/etc/ssh/sshd_config.d/60-ec2-instance-connect.conf": testdataFile(t, "sshd/ubuntu/60-ec2-instance-connect.conf"),
	}
}

func with(base map[string]string, kv ...string) map[string]string {
	m := maps.Clone(base)
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			delete(m, kv[i])
		} else {
			m[kv[i]] = kv[i+1]
		}
	}
	return m
}

func TestSSHDSettings(t *testing.T) {
	ubuntu := ubuntuSSH(t)
	cases := []struct {
		name                string
		files               map[string]string
		password, root      Status
		pwValue, rootValue  string
		pwSource, reasonHas string
		instanceConnect     bool
	}{
		{"ubuntu with cloud-init yes", ubuntu, Failed, Passed, "yes", "prohibit-password",
			"/etc/ssh/sshd_config.d/50-cloud-init.conf:1", "PasswordAuthentication is effectively yes", true},
		{"ubuntu cloud image", with(ubuntu, "/etc/ssh/sshd_config.d/50-cloud-init.conf", ""), Passed, Passed, "no", "prohibit-password",
			"/etc/ssh/sshd_config.d/60-cloudimg-settings.conf:1", "effectively no", true},
		{"match re-enables passwords", map[string]string{"/etc/ssh/sshd_config": "PasswordAuthentication no\nPermitRootLogin no\nMatch User deploy Address 10.0.0.0/8\n  PasswordAuthentication yes\n"},
			Failed, Passed, "no", "no", "/etc/ssh/sshd_config:1", "a Match block re-enables it for some connections: the Match block at /etc/ssh/sshd_config:3 (user, address; set at /etc/ssh/sshd_config:4)", false},
		{"match arguments are not quoted", map[string]string{"/etc/ssh/sshd_config": "PasswordAuthentication no\nMatch User s3cr3t-user,\x1b]0;t\x07 Address 10.0.0.0/8\n  PasswordAuthentication yes\n"},
			Failed, Passed, "no", "prohibit-password", "/etc/ssh/sshd_config:1", "the Match block at /etc/ssh/sshd_config:2 (user, address; set at /etc/ssh/sshd_config:3)", false},
		{"root login in match", map[string]string{"/etc/ssh/sshd_config": "PasswordAuthentication no\nMatch Address 192.168.0.0/16\n  PermitRootLogin yes\n"},
			Passed, Failed, "no", "prohibit-password", "/etc/ssh/sshd_config:1", "", false},
		{"root login yes", map[string]string{"/etc/ssh/sshd_config": "PermitRootLogin=YES\nPasswordAuthentication no\n"},
			Passed, Failed, "no", "yes", "/etc/ssh/sshd_config:2", "", false},
		{"without-password is prohibit-password", map[string]string{"/etc/ssh/sshd_config": "PermitRootLogin without-password\nPasswordAuthentication no\n"},
			Passed, Passed, "no", "prohibit-password", "/etc/ssh/sshd_config:2", "", false},
		{"match all applies everywhere", map[string]string{"/etc/ssh/sshd_config": "PermitRootLogin no\nPasswordAuthentication no\nMatch All\n  PermitRootLogin yes\n"},
			Passed, Failed, "no", "yes", "/etc/ssh/sshd_config:2", "", false},
		{"binary without config runs on defaults", map[string]string{"/usr/sbin/sshd": "ELF"},
			Failed, Passed, "yes", "prohibit-password", "OpenSSH default", "PasswordAuthentication is effectively yes (OpenSSH default)", false},
		{"no sshd", map[string]string{"/etc/hostname": "h"}, Passed, Passed, "", "", "", "sshd is not installed", false},
		{"PAM keyboard-interactive asks for passwords", map[string]string{"/etc/ssh/sshd_config": "PasswordAuthentication no\nUsePAM yes\n"},
			Warning, Passed, "no", "prohibit-password", "/etc/ssh/sshd_config:1", "lets PAM prompt for the password anyway", false},
		{"a value sshd refuses is not rated", map[string]string{"/etc/ssh/sshd_config": "PermitRootLogin \xc3\x28\nPasswordAuthentication no\nMatch User bob\n  PasswordAuthentication perhaps\n"},
			NotAvailable, NotAvailable, "no", "invalid", "/etc/ssh/sshd_config:2", "does not accept (/etc/ssh/sshd_config:4)", false},
		{"key service token stays out of evidence", map[string]string{"/etc/ssh/sshd_config": "PasswordAuthentication no\nAuthorizedKeysCommand /usr/local/bin/keys --token s3cr3t-t0ken %u\n"},
			Passed, Passed, "no", "prohibit-password", "/etc/ssh/sshd_config:1", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs, err := SSHDProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, c.files))))
			if err != nil {
				t.Fatal(err)
			}
			pw, root := one(t, rs, "ssh-password-auth"), one(t, rs, "ssh-root-login")
			if pw.Status != c.password || root.Status != c.root {
				t.Fatalf("password %s (%s), root %s (%s); want %s, %s", pw.Status, pw.Reason, root.Status, root.Reason, c.password, c.root)
			}
			if c.pwValue != "" {
				if pw.Evidence["effective"] != c.pwValue || root.Evidence["effective"] != c.rootValue || pw.Evidence["source"] != c.pwSource {
					t.Errorf("evidence: password %v, root %v", pw.Evidence, root.Evidence)
				}
				if pw.Evidence["ec2_instance_connect"] != c.instanceConnect {
					t.Errorf("ec2_instance_connect = %v, want %v", pw.Evidence["ec2_instance_connect"], c.instanceConnect)
				}
			}
			if !strings.Contains(pw.Reason, c.reasonHas) {
				t.Errorf("password reason %q lacks %q", pw.Reason, c.reasonHas)
			}
			if strings.Contains(evidenceJSON(t, rs), "s3cr3t") {
				t.Error("AuthorizedKeysCommand or Match arguments leaked into evidence")
			}
			for _, r := range rs {
				if strings.Contains(r.Reason, "s3cr3t") || strings.Contains(r.Reason, "\x1b") {
					t.Errorf("reason quotes a Match argument: %q", r.Reason)
				}
			}
			if pw.Resource != "/etc/ssh/sshd_config" {
				t.Errorf("resource %q", pw.Resource)
			}
			if one(t, rs, "ssh-listening-public").Status != NotAvailable {
				t.Error("without a procfs the listener check must be NOT_AVAILABLE")
			}
		})
	}
}

// procnet is the fixture socket tables (testdata/procnet): inode 1001 0.0.0.0:22,
// 1002 127.0.0.1:3306, 1003 10.0.2.15:2222, 1004 [::]:22, 1005 [::1]:3306, 1006 127.0.0.1:8080.
func procnet(t *testing.T) map[string]string {
	return map[string]string{
		"net/tcp":  testdataFile(t, "procnet/tcp"),
		"net/tcp6": testdataFile(t, "procnet/tcp6"),
	}
}

func TestSSHDListeners(t *testing.T) {
	sshd := func(inodes ...uint64) procfstest.Proc {
		return procfstest.Proc{PID: 812, Comm: "sshd", Exe: "/usr/sbin/sshd", Cmdline: []string{"sshd: /usr/sbin/sshd -D [listener]"}, Sockets: inodes}
	}
	systemd := func(inodes ...uint64) procfstest.Proc {
		return procfstest.Proc{PID: 1, Comm: "systemd", Exe: "/usr/lib/systemd/systemd", Sockets: inodes}
	}
	ssh := ubuntuSSH(t)
	socketUnit := with(ssh,
		"/lib/systemd/system/ssh.socket", testdataFile(t, "sshd/ubuntu/ssh.socket"),
		"/etc/systemd/system/sockets.target.wants/ssh.socket", "->/lib/systemd/system/ssh.socket")
	cases := []struct {
		name   string
		files  map[string]string
		procs  []procfstest.Proc
		status Status
		public []string // resources of FAILED results
		owner  string
	}{
		{"sshd on all addresses", ssh, []procfstest.Proc{systemd(), sshd(1001, 1004)}, Failed, []string{"tcp://0.0.0.0:22", "tcp://[::]:22"}, "sshd"},
		{"sshd on another port", ssh, []procfstest.Proc{sshd(1003, 1002)}, Failed, []string{"tcp://10.0.2.15:2222"}, "sshd"},
		{"sshd on loopback only", ssh, []procfstest.Proc{sshd(1002, 1005)}, Passed, nil, ""},
		{"ssh.socket held by systemd", socketUnit, []procfstest.Proc{systemd(1001, 1004)}, Failed, []string{"tcp://0.0.0.0:22", "tcp://[::]:22"}, "systemd socket (ssh.socket)"},
		{"ssh.socket moved to 2222 by the generator", with(socketUnit, "/run/systemd/generator/ssh.socket.d/addresses.conf", testdataFile(t, "sshd/ubuntu/addresses.conf")),
			[]procfstest.Proc{systemd(1001, 1003)}, Failed, []string{"tcp://10.0.2.15:2222"}, "systemd socket (ssh.socket)"},
		{"systemd socket that is not ssh", ssh, []procfstest.Proc{systemd(1001)}, Passed, nil, ""},
		{"owner hidden on sshd's port", ssh, []procfstest.Proc{{PID: 700, Comm: "sshd", NoFD: true}}, Failed, []string{"tcp://0.0.0.0:22", "tcp://[::]:22"}, "unknown owner on sshd's configured port"},
		{"another daemon on a public port", ssh, []procfstest.Proc{{PID: 900, Comm: "mysqld", Exe: "/usr/sbin/mysqld", Sockets: []uint64{1003}}}, Passed, nil, ""},
		// Found only by the walk of every process, after the walk of the likely owners finds none.
		{"sshd under another name", ssh, []procfstest.Proc{{PID: 812, Comm: "ssh-server", Exe: "/usr/sbin/sshd", Sockets: []uint64{1001, 1004}}}, Failed, []string{"tcp://0.0.0.0:22", "tcp://[::]:22"}, "sshd"},
		{"another daemon on sshd's port, sshd's sockets hidden", ssh, []procfstest.Proc{{PID: 700, Comm: "sshd", NoFD: true}, {PID: 900, Comm: "inetd", Exe: "/usr/sbin/inetd", Sockets: []uint64{1001, 1004}}}, Passed, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := procfstest.Build(t, t.TempDir(), c.procs, procnet(t))
			rs, err := SSHDProbe{}.Run(context.Background(), testEnv(t, onRoot(fixtureRoot(t, c.files)), withProc(proc)))
			if err != nil {
				t.Fatal(err)
			}
			got := byCheck(rs, "ssh-listening-public")
			var public []string
			for _, r := range got {
				if r.Status != c.status {
					t.Errorf("%s: status %s (%s), want %s", r.Resource, r.Status, r.Reason, c.status)
				}
				if r.Status == Failed {
					public = append(public, r.Resource)
					if r.Evidence["owner"] != c.owner {
						t.Errorf("%s: owner %v, want %q", r.Resource, r.Evidence["owner"], c.owner)
					}
				}
			}
			if !slices.Equal(public, c.public) {
				t.Errorf("public listeners %v, want %v", public, c.public)
			}
			if c.name == "sshd on all addresses" {
				r := got[0]
				if r.Reason != "SSH listens on 0.0.0.0 port 22 (sshd: 812 sshd (/usr/sbin/sshd))" {
					t.Errorf("reason %q", r.Reason)
				}
				if r.Evidence["port"] != 22 || r.Evidence["address"] != "0.0.0.0" || !slices.Equal(r.Evidence["processes"].([]string), []string{"812 sshd (/usr/sbin/sshd)"}) {
					t.Errorf("evidence %v", r.Evidence)
				}
			}
			if c.name == "sshd on loopback only" {
				if ll := got[0].Evidence["loopback_listeners"].([]string); !slices.Equal(ll, []string{"tcp://127.0.0.1:3306", "tcp://[::1]:3306"}) {
					t.Errorf("loopback listeners %v", ll)
				}
			}
		})
	}
}

// TestSSHDRealDaemon starts a real sshd on a loopback high port and finds its listener through
// the real /proc: attributed to that sshd, and not reported as public.
func TestSSHDRealDaemon(t *testing.T) {
	bin := testenv.SSHD(t)
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp here")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "host_ed25519")
	testenv.HostKey(t, key)
	port := testenv.FreePort(t)
	cfgText := fmt.Sprintf("HostKey %s\nListenAddress 127.0.0.1\nPort %d\nPidFile none\nUsePAM no\nPasswordAuthentication no\n", key, port)
	cfgPath := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfgPath, []byte(cfgText), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-D", "-e", "-f", cfgPath)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start sshd: %v", err)
	}
	t.Cleanup(func() { cancel(); cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("sshd did not listen on %s: %v; stderr: %s", addr, err, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	env := testEnv(t, onRoot(fixtureRoot(t, map[string]string{"/etc/ssh/sshd_config": cfgText, "/usr/sbin/sshd": "ELF"})), withProc("/proc"))
	found, _, err := findSSHListeners(context.Background(), env, nil)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(found, func(s sshListener) bool { return s.l.String() == "tcp://"+addr })
	if i < 0 {
		t.Fatalf("the real sshd's listener %s was not found among %v", addr, found)
	}
	if !slices.Contains(found[i].pids, cmd.Process.Pid) || found[i].activation != "sshd" || !found[i].l.Loopback() {
		t.Errorf("listener %+v, want pid %d, activation sshd, loopback", found[i], cmd.Process.Pid)
	}
	rs, err := SSHDProbe{}.Run(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range byCheck(rs, "ssh-listening-public") {
		if r.Resource == "tcp://"+addr {
			t.Errorf("a loopback sshd was reported: %+v", r)
		}
		if r.Status == Passed && !slices.Contains(r.Evidence["loopback_listeners"].([]string), "tcp://"+addr) {
			t.Errorf("loopback listeners %v lack %s", r.Evidence["loopback_listeners"], addr)
		}
	}
	if pw := one(t, rs, "ssh-password-auth"); pw.Status != Passed {
		t.Errorf("password auth: %s (%s)", pw.Status, pw.Reason)
	}
}

// TestSSHDWindowsLayout reads OpenSSH for Windows' config, relative includes from
// %ProgramData%\ssh.
func TestSSHDWindowsLayout(t *testing.T) {
	lay := sshdLayoutFor("windows")
	env := testEnv(t, onRoot(fixtureRoot(t, map[string]string{
		"/ProgramData/ssh/sshd_config":            "Include sshd_config.d/*.conf\nPasswordAuthentication yes\n",
		"/ProgramData/ssh/sshd_config.d/ec2.conf": "PasswordAuthentication no\n",
		"/etc/ssh/sshd_config.d/ignored.conf":     "PasswordAuthentication yes\n",
	})))
	cfg, err := loadSSHDConfig(env, lay)
	if err != nil {
		t.Fatal(err)
	}
	rs := sshdSetting(lay, cfg, nil, nil, "ssh-password-auth", "passwordauthentication", "yes", []string{"yes"})
	if rs[0].Status != Passed || rs[0].Evidence["source"] != "/ProgramData/ssh/sshd_config.d/ec2.conf:1" || rs[0].Resource != "/ProgramData/ssh/sshd_config" {
		t.Errorf("%s %s %v", rs[0].Status, rs[0].Resource, rs[0].Evidence)
	}
}

// TestSSHListenersLikelyOwnersFirst: when sshd's own sockets settle the answer, no other
// process's fds are read (a process whose fds cannot be listed is not even counted); when
// they do not (nothing public), every process is, and the unreadable one is counted.
func TestSSHListenersLikelyOwnersFirst(t *testing.T) {
	hidden := procfstest.Proc{PID: 900, Comm: "postgres", NoFD: true}
	cases := []struct {
		name       string
		sshd       procfstest.Proc
		found      int
		unreadable int
	}{
		{"public sshd settles it", procfstest.Proc{PID: 812, Comm: "sshd", Sockets: []uint64{1001, 1004}}, 2, 0},
		{"loopback sshd does not", procfstest.Proc{PID: 812, Comm: "sshd", Sockets: []uint64{1002}}, 3, 1}, // 22 unattributed: an unknown owner,
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			proc := procfstest.Build(t, t.TempDir(), []procfstest.Proc{c.sshd, hidden}, procnet(t))
			env := testEnv(t, onRoot(fixtureRoot(t, ubuntuSSH(t))), withProc(proc))
			cfg, _ := loadSSHDConfig(env, sshdLayoutFor("linux"))
			found, unreadable, err := findSSHListeners(context.Background(), env, cfg)
			if err != nil || len(found) != c.found || unreadable != c.unreadable {
				t.Errorf("found %d, unreadable %d, err %v; want %d, %d", len(found), unreadable, err, c.found, c.unreadable)
			}
		})
	}
}
