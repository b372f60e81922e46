package imdswatch

import (
	"io/fs"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// cgroupIndex finds the cgroup v2 path of the kernel's cgroup id, which on 64-bit kernels is
// the inode number of the cgroup's directory. It places a caller that was gone before its
// /proc entry could be read (curl in a cron job or a container's entrypoint) in its unit or
// container: the id comes with the event, and a cgroup outlives its last process a little.
//
// The index is rebuilt by walking the hierarchy when an id is missing, at most once a second
// (or ten times as long as the last walk took) and over at most maxCgroupDirs directories.
// A root that is not a cgroup2 file system (the watcher's private mount, gone after the attach,
// whose temporary path anyone could create again) is never walked.
type cgroupIndex struct {
	root  string
	paths map[uint64]string
	next  time.Time
}

const maxCgroupDirs = 8192

func (c *cgroupIndex) path(id uint64, now time.Time) (string, bool) {
	if c.root == "" || id == 0 {
		return "", false
	}
	if p, ok := c.paths[id]; ok {
		return p, true
	}
	if now.Before(c.next) {
		return "", false
	}
	c.paths = nil
	if isCgroup2(c.root) {
		c.paths = walkCgroups(c.root, maxCgroupDirs)
	}
	c.next = now.Add(max(time.Second, 10*time.Since(now)))
	p, ok := c.paths[id]
	return p, ok
}

// walkCgroups maps the inode of each directory under root, at most limit of them, to its path
// as /proc/<pid>/cgroup shows it ("/system.slice/cron.service"). Symbolic links are not
// followed.
func walkCgroups(root string, limit int) map[uint64]string {
	paths := map[uint64]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // an unreadable directory is skipped, not the walk
		}
		if len(paths) >= limit {
			return fs.SkipAll
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			return nil
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return nil
		}
		paths[st.Ino] = filepath.Join("/", rel)
		return nil
	})
	return paths
}

func isCgroup2(dir string) bool {
	var st unix.Statfs_t
	return unix.Statfs(dir, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}
