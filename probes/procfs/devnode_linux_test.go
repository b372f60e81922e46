package procfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDeviceNodeNeverOpened: in a --proc that is not a mounted procfs, a device node or FIFO
// where environ, comm, status or net/tcp should be is refused before it is opened (opening a
// device runs its driver). inotify sees every open of the directory's entries.
func TestDeviceNodeNeverOpened(t *testing.T) {
	dir := t.TempDir()
	pd := filepath.Join(dir, "42")
	os.MkdirAll(pd, 0o755)
	os.MkdirAll(filepath.Join(dir, "net"), 0o755)
	nodes := map[string]uint32{"environ": unix.S_IFCHR, "comm": unix.S_IFIFO, "status": unix.S_IFCHR}
	for name, typ := range nodes {
		// 1:3 is /dev/null: harmless should it be opened, and the open is what is looked for.
		if err := unix.Mknod(filepath.Join(pd, name), typ|0o644, int(unix.Mkdev(1, 3))); err != nil {
			t.Skipf("mknod: %v (needs root)", err)
		}
	}
	if err := unix.Mknod(filepath.Join(dir, "net", "tcp"), unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
		t.Skipf("mknod: %v", err)
	}
	in, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		t.Skipf("inotify: %v", err)
	}
	defer unix.Close(in)
	for _, d := range []string{pd, filepath.Join(dir, "net")} {
		if _, err := unix.InotifyAddWatch(in, d, unix.IN_OPEN); err != nil {
			t.Fatal(err)
		}
	}
	p := New(dir)
	if _, _, err := p.Environ(42, 1<<20, nil); err == nil {
		t.Error("a device as environ was read")
	}
	if _, err := p.Comm(42); err == nil {
		t.Error("a FIFO as comm was read")
	}
	if _, err := p.ReadStatus(42); err == nil {
		t.Error("a device as status was read")
	}
	if _, err := p.Listeners(); err == nil {
		t.Error("a device as net/tcp was read")
	}
	buf := make([]byte, 4096)
	n, _ := unix.Read(in, buf)
	for off := 0; off+unix.SizeofInotifyEvent <= n; {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
		name := strings.TrimRight(string(buf[off+unix.SizeofInotifyEvent:off+unix.SizeofInotifyEvent+int(ev.Len)]), "\x00")
		t.Errorf("%s was opened", name)
		off += unix.SizeofInotifyEvent + int(ev.Len)
	}
}
