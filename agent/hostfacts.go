package agent

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/shirou/gopsutil/v4/common"
	"github.com/shirou/gopsutil/v4/host"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/procfs"
)

// Facts are what the OS says about the scanned host, read through gopsutil: its OS,
// distribution and version, and for a live host its kernel, architecture, boot time and
// hypervisor or container. A fact that could not be read is "" (JSON null).
type Facts struct {
	OS              string
	Platform        string // "ubuntu", "amazon", "debian", …
	PlatformVersion string
	KernelVersion   string
	Arch            string // the kernel's machine name: x86_64, aarch64
	BootTime        time.Time
	Virtualization  string // gopsutil's system and role, e.g. "kvm guest", "docker guest"
}

// releaseFiles are the files under /etc that gopsutil reads to name the distribution.
var releaseFiles = []string{
	"os-release", "lsb-release", "system-release", "redhat-release", "centos-release",
	"oracle-release", "enterprise-release", "debian_version", "alpine-release", "arch-release",
	"gentoo-release", "SuSE-release", "slackware-version", "neokylin-release",
}

// maxReleaseFile bounds each release file copied for gopsutil (they are a few hundred bytes).
const maxReleaseFile = 64 << 10

// hostFacts reads the facts of the host under root. gopsutil reads whatever paths it is
// given with plain opens (a FIFO would block it, a link could lead it out of the root, a
// device would never end), so it is only pointed at trees that cannot do that:
//   - the distribution: a private copy of the release files under /etc of root (also for "/"),
//     each read through fsys (regular files only, links resolved inside the root, bounded),
//     made in tmp (the state dir, the one place a confined worker may write; "" for the
//     system's temp dir) and handed to gopsutil as HOST_ETC in its context environment (never
//     the process environment, which the probes and the SDK share). The copy always holds an
//     lsb-release, empty when root has none: without one gopsutil runs /usr/bin/lsb_release,
//     which is the agent's host's program even for an image (the wrong distribution), a
//     process the agent must not start, and most of a scan's wall time;
//   - the kernel, architecture, boot time and virtualization only for a live host whose proc
//     is a mounted procfs (HOST_PROC); an offline image or a procfs fixture leaves them "".
func hostFacts(ctx context.Context, fsys *hostfs.FS, root, tmp string, proc procfs.FS, live bool) Facts {
	dir, err := os.MkdirTemp(tmp, "ec2sec-etc-")
	if err != nil {
		return Facts{}
	}
	defer os.RemoveAll(dir)
	for _, name := range releaseFiles {
		data, _, err := fsys.ReadFile("/etc/"+name, maxReleaseFile)
		if err == nil {
			os.WriteFile(filepath.Join(dir, name), data, 0o600)
		}
	}
	if _, err := os.Lstat(filepath.Join(dir, "lsb-release")); err != nil {
		if os.WriteFile(filepath.Join(dir, "lsb-release"), nil, 0o600) != nil {
			return Facts{} // better no facts than a process started
		}
	}
	env := common.EnvMap{common.HostEtcEnvKey: dir}
	kernel := live && proc.Dir != "" && proc.Kernel()
	if kernel {
		env[common.HostProcEnvKey] = proc.Dir
		if filepath.Clean(root) != "/" {
			env[common.HostSysEnvKey] = filepath.Join(root, "sys")
		}
	}
	ctx = context.WithValue(ctx, common.EnvKey, env)
	var f Facts
	if platform, _, version, err := host.PlatformInformationWithContext(ctx); err == nil {
		f.Platform, f.PlatformVersion = platform, version
	}
	if f.Platform != "" || live {
		f.OS = runtime.GOOS
	}
	if !kernel {
		return f
	}
	if v, err := host.KernelVersionWithContext(ctx); err == nil {
		f.KernelVersion = v
	}
	if a, err := host.KernelArch(); err == nil {
		f.Arch = a
	}
	if bt, err := host.BootTimeWithContext(ctx); err == nil && bt > 0 {
		f.BootTime = time.Unix(int64(bt), 0).UTC()
	}
	if sys, role, err := host.VirtualizationWithContext(ctx); err == nil && sys != "" {
		f.Virtualization = sys
		if role != "" {
			f.Virtualization += " " + role
		}
	}
	return f
}

// factsTmp is where hostFacts makes its copy: the state dir when it exists (a confined worker
// may write nowhere else), else the system's temp dir ("").
func factsTmp(stateDir string) string {
	if fi, err := os.Stat(stateDir); stateDir != "" && err == nil && fi.IsDir() {
		return stateDir
	}
	return ""
}
