// Package bench builds the large host fixture that ec2sec's benchmarks scan and measures the
// agent as a whole process against the gitleaks CLI (see cmd/benchcmp and BENCHMARKS.md).
//
// The fixture is generated at bench time, never committed: git keeps no modes or symlinks,
// and the fake secrets in it are made fresh (deterministically, from a fixed seed, so every
// run scans the same bytes).
package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Sizes of the fixture, as the benchmark issue fixes them.
const (
	Users         = 200
	Processes     = 2000
	UserDataFiles = 3
	UserDataSize  = 16 << 10
)

// Fixture is a generated host: Root is the --root tree, Proc the --proc tree, UserData one
// of the 16 KB cached user-data files (the file the gitleaks CLI is timed on).
type Fixture struct {
	Dir, Root, Proc, UserData string
	// Planted counts the secrets planted where ec2sec must find them, by check id.
	Planted map[string]int
}

// Size says how large a fixture to build, and which host it is.
type Size struct {
	Users, Processes int
	// NoPublicSSH makes a host whose sshd listens on loopback only, beside a public nginx,
	// and whose processes hold a few sockets and files each: the sshd probe cannot settle on
	// sshd's own sockets and walks every process's file descriptors, a scan's worst case.
	NoPublicSSH bool
}

// Full is the benchmark fixture's size; Small is for tests that only need every code path.
// FullNoPublicSSH is Full on a host with no public sshd.
var (
	Full            = Size{Users: Users, Processes: Processes}
	Small           = Size{Users: 5, Processes: 20}
	FullNoPublicSSH = Size{Users: Users, Processes: Processes, NoPublicSSH: true}
)

type gen struct {
	size       Size
	root, proc string
	rng        *rand.Rand
	err        error
	planted    map[string]int
}

// Build writes the full fixture under dir (which must be empty or absent).
func Build(dir string) (*Fixture, error) { return BuildSize(dir, Full) }

// BuildSize writes a fixture of the given size under dir.
func BuildSize(dir string, size Size) (*Fixture, error) {
	g := &gen{
		size: size,
		root: filepath.Join(dir, "root"), proc: filepath.Join(dir, "proc"),
		rng:     rand.New(rand.NewPCG(8, 2026)),
		planted: map[string]int{},
	}
	g.system()
	g.users()
	g.sshd()
	g.userData()
	g.processes()
	if g.err != nil {
		return nil, g.err
	}
	return &Fixture{
		Dir: dir, Root: g.root, Proc: g.proc,
		UserData: filepath.Join(g.root, "var/lib/cloud/instances", instanceID(0), "user-data.txt"),
		Planted:  g.planted,
	}, nil
}

func instanceID(i int) string { return fmt.Sprintf("i-0%015x", 0xbe4c0000+i) }

func (g *gen) write(rel, content string, mode os.FileMode) {
	if g.err != nil {
		return
	}
	p := filepath.Join(g.root, filepath.FromSlash(rel))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.err = err
		return
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		g.err = err
		return
	}
	g.err = os.Chmod(p, mode) // WriteFile's mode is masked by the umask
}

func (g *gen) symlink(target, p string) {
	if g.err != nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		g.err = err
		return
	}
	g.err = os.Symlink(target, p)
}

const (
	alnum  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	base32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

func (g *gen) str(n int, alphabet string) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[g.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// key returns a fake access key id with prefix and a 40-character secret key.
func (g *gen) key(prefix string) (id, secret string) {
	return prefix + g.str(16, base32), g.str(38, alnum+"/+") + "9z"
}

// system writes the system files every probe reads: passwd, shadow, profile snippets,
// units, the SSM agent and its log, a kernel command line and boot config.
func (g *gen) system() {
	var passwd, shadow strings.Builder
	sys := []string{"root:x:0:0:root:/root:/bin/bash", "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
		"bin:x:2:2:bin:/bin:/usr/sbin/nologin", "sys:x:3:3:sys:/dev:/usr/sbin/nologin",
		"sshd:x:105:65534::/run/sshd:/usr/sbin/nologin", "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin"}
	for _, l := range sys {
		passwd.WriteString(l + "\n")
		shadow.WriteString(strings.SplitN(l, ":", 2)[0] + ":*:19000:0:99999:7:::\n")
	}
	for i := range g.size.Users {
		fmt.Fprintf(&passwd, "user%03d:x:%d:%d:User %d:/home/user%03d:/bin/bash\n", i, 1000+i, 1000+i, i, i)
		fmt.Fprintf(&shadow, "user%03d:!:19000:0:99999:7:::\n", i)
	}
	g.write("etc/passwd", passwd.String(), 0o644)
	g.write("etc/shadow", shadow.String(), 0o640)
	g.write("etc/hostname", "bench-host\n", 0o644)
	g.write("etc/environment", "PATH=\"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\"\n", 0o644)
	g.write("etc/profile", strings.Repeat("# system-wide .profile for sh(1)\nif [ -d /etc/profile.d ]; then\n  for i in /etc/profile.d/*.sh; do . $i; done\nfi\n", 8), 0o644)
	for _, n := range []string{"bash_completion.sh", "lang.sh", "vte.sh", "proxy.sh"} {
		g.write("etc/profile.d/"+n, strings.Repeat("# "+n+"\nexport HISTSIZE=10000\n[ -n \"$BASH\" ] && shopt -s histappend\n", 20), 0o644)
	}
	g.write("etc/bash.bashrc", bashrc, 0o644)
	g.write("etc/crontab", "SHELL=/bin/sh\n17 * * * * root cd / && run-parts --report /etc/cron.hourly\n", 0o644)
	g.write("etc/default/grub", "GRUB_DEFAULT=0\nGRUB_CMDLINE_LINUX_DEFAULT=\"quiet\"\nGRUB_CMDLINE_LINUX=\"console=tty1\"\n", 0o644)
	for _, n := range []string{"locale", "useradd", "keyboard", "ssh"} {
		g.write("etc/default/"+n, "# defaults for "+n+"\nOPTIONS=\"\"\n", 0o644)
	}
	for i := range 10 {
		g.write(fmt.Sprintf("etc/systemd/system/app%d.service", i),
			fmt.Sprintf("[Unit]\nDescription=app %d\n[Service]\nEnvironmentFile=-/etc/app%d.env\nExecStart=/usr/local/bin/app%d\nUser=user%03d\n[Install]\nWantedBy=multi-user.target\n", i, i, i, i), 0o644)
		env := fmt.Sprintf("APP_PORT=%d\nLOG_LEVEL=info\n", 8000+i)
		if i == 3 {
			id, secret := g.key("AKIA")
			env += "AWS_ACCESS_KEY_ID=" + id + "\nAWS_SECRET_ACCESS_KEY=" + secret + "\n"
			g.planted["cred-long-lived-key"]++
		}
		g.write(fmt.Sprintf("etc/app%d.env", i), env, 0o600)
	}
	g.write("usr/bin/amazon-ssm-agent", "\x7fELF fake agent binary, data only\n", 0o755)
	g.write("etc/amazon/ssm/amazon-ssm-agent.json", `{"Agent":{"Region":""},"Ssm":{"Endpoint":""}}`+"\n", 0o644)
	var log strings.Builder
	for i := 0; log.Len() < 256<<10; i++ {
		fmt.Fprintf(&log, "2026-11-28 10:%02d:%02d INFO [ssm-agent-worker] [MessageService] [MGSInteractor] send reply %d\n", i/60%60, i%60, i)
	}
	g.write("var/log/amazon/ssm/amazon-ssm-agent.log", log.String(), 0o600)
	g.write("var/log/amazon/ssm/errors.log", "", 0o600)
	g.symlink("/lib/systemd/system/amazon-ssm-agent.service", filepath.Join(g.root, "etc/systemd/system/multi-user.target.wants/amazon-ssm-agent.service"))
	g.symlink("/lib/systemd/system/ssh.service", filepath.Join(g.root, "etc/systemd/system/multi-user.target.wants/ssh.service"))
	g.write("lib/systemd/system/ssh.service", "[Service]\nExecStart=/usr/sbin/sshd -D\n", 0o644)
	g.write("usr/sbin/sshd", "\x7fELF fake sshd, data only\n", 0o755)
}

// users writes 200 homes, each with AWS credential and config files, shell start-up files and
// a shell history; a few hold real-looking keys and passwords.
func (g *gen) users() {
	for i := range g.size.Users {
		home := fmt.Sprintf("home/user%03d/", i)
		creds := "[default]\nregion = us-east-1\ncredential_process = /usr/local/bin/aws-vault export --format=json default\n"
		if i%25 == 7 {
			id, secret := g.key("AKIA")
			creds = fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret)
			g.planted["cred-long-lived-key"]++
		}
		g.write(home+".aws/credentials", creds, 0o600)
		g.write(home+".aws/config", "[default]\nregion = us-east-1\noutput = json\n\n[profile admin]\nrole_arn = arn:aws:iam::123456789012:role/Admin\nsource_profile = default\n", 0o600)
		g.write(home+".bashrc", bashrc, 0o644)
		g.write(home+".profile", "# ~/.profile\nif [ -n \"$BASH_VERSION\" ]; then . \"$HOME/.bashrc\"; fi\nPATH=\"$HOME/bin:$PATH\"\n", 0o644)
		var h strings.Builder
		for j := 0; h.Len() < 6<<10; j++ {
			h.WriteString(historyLines[(i+j)%len(historyLines)])
			h.WriteByte('\n')
			if j%4 == 0 { // every history is its own: no two users type the same
				fmt.Fprintf(&h, "cd ~/src/%s && git log --oneline | head -%d\n", g.str(8, alnum), 1+g.rng.IntN(20))
			}
		}
		if i%40 == 11 {
			fmt.Fprintf(&h, "mysql -u admin -p%s -h db.internal\n", g.str(14, alnum))
			g.planted["secret-in-local-file"]++
		}
		g.write(home+".bash_history", h.String(), 0o600)
		if i%10 == 0 {
			g.write(home+".gitconfig", "[user]\n\tname = User\n\temail = user@example.com\n", 0o644)
		}
	}
	g.write("root/.bashrc", bashrc, 0o644)
	g.write("root/.bash_history", strings.Join(historyLines, "\n")+"\n", 0o600)
}

// sshd writes an sshd_config with includes and a Match block, as Ubuntu ships it.
func (g *gen) sshd() {
	g.write("etc/ssh/sshd_config", "Include /etc/ssh/sshd_config.d/*.conf\n"+sshdConfig, 0o644)
	for i, body := range []string{
		"PasswordAuthentication no\n",
		"PermitRootLogin prohibit-password\n",
		"ClientAliveInterval 120\nClientAliveCountMax 3\n",
		"Include /etc/ssh/extra/*.conf\n",
		"Match User deploy\n  PasswordAuthentication yes\n",
	} {
		g.write(fmt.Sprintf("etc/ssh/sshd_config.d/%02d-bench.conf", 10*(i+1)), body, 0o644)
	}
	g.write("etc/ssh/extra/logging.conf", "LogLevel VERBOSE\nSyslogFacility AUTH\n", 0o644)
}

// userData writes three 16 KB cloud-init user-data caches: this instance's and two earlier
// ones baked into the image. Each holds a shell script with a couple of secrets.
func (g *gen) userData() {
	for i := range UserDataFiles {
		var b strings.Builder
		b.WriteString("#!/bin/bash\n# bootstrap for the web tier\nset -euo pipefail\n")
		id, secret := g.key("AKIA")
		fmt.Fprintf(&b, "export AWS_ACCESS_KEY_ID=%s\nexport AWS_SECRET_ACCESS_KEY=%s\n", id, secret)
		fmt.Fprintf(&b, "echo 'admin:%s' | chpasswd\n", g.str(16, alnum))
		g.planted["userdata-cached-secret"] += 2
		for j := 0; b.Len() < UserDataSize-200; j++ {
			b.WriteString(scriptLines[j%len(scriptLines)])
			b.WriteByte('\n')
		}
		s := b.String()
		for len(s) < UserDataSize {
			s += "# padding\n"
		}
		g.write(fmt.Sprintf("var/lib/cloud/instances/%s/user-data.txt", instanceID(i)), s[:UserDataSize-1]+"\n", 0o600)
		g.write(fmt.Sprintf("var/lib/cloud/instances/%s/cloud-config.txt", instanceID(i)), "#cloud-config\npackage_update: true\n", 0o600)
	}
	g.write("var/lib/cloud/data/instance-id", instanceID(0)+"\n", 0o644)
	g.symlink("/var/lib/cloud/instances/"+instanceID(0), filepath.Join(g.root, "var/lib/cloud/instance"))
}

// processes writes a procfs tree of 2,000 processes with status, comm, cmdline, an exe link
// and a 1-3 KB environment; one in 250 holds an AWS key pair. sshd listens on port 22
// (on 127.0.0.1 only, beside nginx on port 80, with NoPublicSSH).
func (g *gen) processes() {
	write := func(rel string, content string) {
		if g.err != nil {
			return
		}
		p := filepath.Join(g.proc, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			g.err = err
			return
		}
		g.err = os.WriteFile(p, []byte(content), 0o644)
	}
	const sshdInode, nginxInode = 424242, 434343
	listen := func(sl int, addr string, inode int) string {
		return fmt.Sprintf("  %2d: %s 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 %d 1 0000000000000000 100 0 0 10 0\n", sl, addr, inode)
	}
	tcp := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	if g.size.NoPublicSSH {
		tcp += listen(0, "0100007F:0016", sshdInode) + listen(1, "00000000:0050", nginxInode) // 127.0.0.1:22, 0.0.0.0:80
	} else {
		tcp += listen(0, "00000000:0016", sshdInode) // 0.0.0.0:22
	}
	write("net/tcp", tcp)
	write("net/tcp6", "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	write("cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/nvme0n1p1 ro console=tty1 nvme_core.io_timeout=4294967295\n")
	progs := []struct{ comm, exe string }{
		{"systemd", "/usr/lib/systemd/systemd"}, {"nginx", "/usr/sbin/nginx"}, {"python3", "/usr/bin/python3.12"},
		{"java", "/usr/lib/jvm/java-21/bin/java"}, {"node", "/usr/bin/node"}, {"bash", "/usr/bin/bash"},
		{"postgres", "/usr/lib/postgresql/16/bin/postgres"}, {"amazon-ssm-agen", "/usr/bin/amazon-ssm-agent"},
	}
	for n := range g.size.Processes {
		pid := 1 + n*3
		pr := progs[n%len(progs)]
		if n == 1 {
			pr.comm, pr.exe = "sshd", "/usr/sbin/sshd"
		}
		uid := 1000 + n%g.size.Users
		if n%5 == 0 {
			uid = 0
		}
		d := strconv.Itoa(pid) + "/"
		write(d+"comm", pr.comm+"\n")
		write(d+"cmdline", pr.exe+"\x00--config\x00/etc/"+pr.comm+"/"+pr.comm+".conf\x00")
		write(d+"status", fmt.Sprintf("Name:\t%s\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t%d\nPid:\t%d\nPPid:\t1\nUid:\t%d\t%d\t%d\t%d\nGid:\t%d\t%d\t%d\t%d\nVmRSS:\t  10240 kB\nThreads:\t4\n", pr.comm, pid, pid, uid, uid, uid, uid, uid, uid, uid, uid))
		var env strings.Builder
		fmt.Fprintf(&env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\x00HOME=/home/user%03d\x00LANG=C.UTF-8\x00SHELL=/bin/bash\x00USER=user%03d\x00INVOCATION_ID=%s\x00JOURNAL_STREAM=8:%d\x00", uid-1000, uid-1000, g.str(32, "0123456789abcdef"), 10000+n)
		for k := 0; k < 10+n%40; k++ {
			fmt.Fprintf(&env, "APP_SETTING_%d=value-%s\x00", k, g.str(24, alnum))
		}
		if n%250 == 17 {
			id, secret := g.key("AKIA")
			fmt.Fprintf(&env, "AWS_ACCESS_KEY_ID=%s\x00AWS_SECRET_ACCESS_KEY=%s\x00", id, secret)
			g.planted["cred-process-env"]++
		}
		write(d+"environ", env.String())
		g.symlink(pr.exe, filepath.Join(g.proc, d+"exe"))
		fd := filepath.Join(g.proc, d+"fd")
		switch {
		case pr.comm == "sshd":
			g.symlink(fmt.Sprintf("socket:[%d]", sshdInode), filepath.Join(fd, "3"))
		case g.size.NoPublicSSH && pr.comm == "nginx":
			g.symlink(fmt.Sprintf("socket:[%d]", nginxInode), filepath.Join(fd, "3"))
		case g.err == nil:
			g.err = os.MkdirAll(fd, 0o755)
		}
		g.symlink("/dev/null", filepath.Join(fd, "0"))
		if g.size.NoPublicSSH {
			// What a service holds: its log, a pipe, connections (sockets not in net/tcp).
			g.symlink("/var/log/"+pr.comm+".log", filepath.Join(fd, "1"))
			g.symlink(fmt.Sprintf("pipe:[%d]", 600000+n), filepath.Join(fd, "2"))
			for k := range 2 + n%5 {
				g.symlink(fmt.Sprintf("socket:[%d]", 700000+8*n+k), filepath.Join(fd, strconv.Itoa(4+k)))
			}
		}
	}
}

const bashrc = `# ~/.bashrc: executed by bash(1) for non-login shells.
case $- in
    *i*) ;;
      *) return;;
esac
HISTCONTROL=ignoreboth
shopt -s histappend
HISTSIZE=1000
HISTFILESIZE=2000
shopt -s checkwinsize
if [ -z "${debian_chroot:-}" ] && [ -r /etc/debian_chroot ]; then
    debian_chroot=$(cat /etc/debian_chroot)
fi
case "$TERM" in
    xterm-color|*-256color) color_prompt=yes;;
esac
if [ "$color_prompt" = yes ]; then
    PS1='${debian_chroot:+($debian_chroot)}\[\033[01;32m\]\u@\h\[\033[00m\]:\[\033[01;34m\]\w\[\033[00m\]\$ '
else
    PS1='${debian_chroot:+($debian_chroot)}\u@\h:\w\$ '
fi
unset color_prompt force_color_prompt
if [ -x /usr/bin/dircolors ]; then
    test -r ~/.dircolors && eval "$(dircolors -b ~/.dircolors)" || eval "$(dircolors -b)"
    alias ls='ls --color=auto'
    alias grep='grep --color=auto'
fi
alias ll='ls -alF'
alias la='ls -A'
alias l='ls -CF'
if [ -f ~/.bash_aliases ]; then
    . ~/.bash_aliases
fi
if ! shopt -oq posix; then
  if [ -f /usr/share/bash-completion/bash_completion ]; then
    . /usr/share/bash-completion/bash_completion
  elif [ -f /etc/bash_completion ]; then
    . /etc/bash_completion
  fi
fi
`

var historyLines = []string{
	"ls -la", "cd /var/www/html", "sudo systemctl restart nginx", "git pull origin main",
	"docker ps -a", "kubectl get pods -n production", "tail -f /var/log/syslog",
	"aws s3 ls s3://my-bucket/backups/", "vim /etc/nginx/sites-available/default",
	"df -h", "free -m", "top", "ps aux | grep java", "journalctl -u app.service --since today",
	"curl -s http://localhost:8080/health", "terraform plan -out plan.tfplan",
	"python3 manage.py migrate", "npm ci && npm run build", "grep -rn TODO src/",
	"ssh deploy@10.0.1.12", "scp build.tar.gz deploy@10.0.1.12:/tmp/", "history | tail",
	"export AWS_PROFILE=admin", "aws sts get-caller-identity", "make -j2 test",
}

var scriptLines = []string{
	"yum install -y httpd php php-mysqlnd amazon-cloudwatch-agent",
	"systemctl enable --now httpd",
	"mkdir -p /var/www/html/app && chown -R apache:apache /var/www/html/app",
	"aws s3 cp s3://deploy-artifacts/web/latest.tar.gz /tmp/app.tar.gz --region us-east-1",
	"tar -xzf /tmp/app.tar.gz -C /var/www/html/app",
	"cat > /etc/httpd/conf.d/app.conf <<'EOF'",
	"<VirtualHost *:80>",
	"  DocumentRoot /var/www/html/app/public",
	"  <Directory /var/www/html/app/public>",
	"    AllowOverride All",
	"  </Directory>",
	"</VirtualHost>",
	"EOF",
	"sed -i 's/^max_execution_time = .*/max_execution_time = 120/' /etc/php.ini",
	"echo 'vm.swappiness=10' >> /etc/sysctl.d/99-app.conf && sysctl --system",
	"for i in $(seq 1 5); do curl -sf http://localhost/health && break; sleep 2; done",
	"/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s",
	"logger -t bootstrap \"web tier ready on $(hostname -f)\"",
}

const sshdConfig = `# This is the sshd server system-wide configuration file.
#Port 22
#AddressFamily any
#ListenAddress 0.0.0.0
#HostKey /etc/ssh/ssh_host_ed25519_key
#LoginGraceTime 2m
#StrictModes yes
#MaxAuthTries 6
#PubkeyAuthentication yes
KbdInteractiveAuthentication no
UsePAM yes
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem	sftp	/usr/lib/openssh/sftp-server
Match Group admins
  AllowTcpForwarding yes
Match Address 10.0.0.0/8
  PermitRootLogin no
`
