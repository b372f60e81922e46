//go:build linux && (amd64 || arm64)

package imdswatch

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

func init() { loadHelperFn = loadHelper }

// progIDs are the kernel ids of the watcher's programs.
func (w *Watcher) progIDs() []ebpf.ProgramID {
	var ids []ebpf.ProgramID
	for _, p := range []*ebpf.Program{w.objs.ImdsConnect4, w.objs.ImdsConnect6, w.objs.ImdsSockops, w.objs.ImdsMsg, w.objs.ImdsParse} {
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				ids = append(ids, id)
			}
		}
	}
	return ids
}

// gone waits until no program of ids is in the kernel any more (freeing is asynchronous).
func gone(t *testing.T, ids []ebpf.ProgramID) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for _, id := range ids {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Now().After(deadline) {
				t.Fatalf("program %d is still loaded", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestCloseUnloads: Close leaves no program in the kernel.
func TestCloseUnloads(t *testing.T) {
	w := needBPF(t, Options{})
	ids := w.progIDs()
	if len(ids) != 5 {
		t.Fatalf("%d program ids, want 5", len(ids))
	}
	w.Close()
	gone(t, ids)
}

// TestCrashLeavesNothing: a process killed with the watcher loaded leaves no program
// attached or loaded: nothing is pinned, links and maps die with their file descriptors.
func TestCrashLeavesNothing(t *testing.T) {
	needBPF(t, Options{}).Close() // skips where BPF cannot load
	exe, _ := os.Executable()
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), "IMDSWATCH_HELPER=load")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		t.Fatalf("helper: %v", err)
	}
	var ids []ebpf.ProgramID
	for _, f := range strings.Fields(line) {
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil {
			t.Fatalf("helper said %q", line)
		}
		ids = append(ids, ebpf.ProgramID(n))
	}
	if len(ids) != 5 {
		t.Fatalf("helper said %q", line)
	}
	cmd.Process.Kill()
	cmd.Wait()
	gone(t, ids)
}

// loadHelper loads the watcher, prints its program ids and waits to be killed.
func loadHelper() int {
	w, err := Load(Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var s []string
	for _, id := range w.progIDs() {
		s = append(s, strconv.FormatUint(uint64(id), 10))
	}
	fmt.Println(strings.Join(s, " "))
	select {}
}

// TestEnrichZombieNetns: a short-lived caller (curl) has often exited by the time its event
// is read, a zombie whose /proc entry has no ns link left. Its namespace still comes from the
// kernel's netns cookie: the agent's own, or another.
func TestEnrichZombieNetns(t *testing.T) {
	self := ownNetnsCookie()
	if self == 0 {
		t.Skip("no SO_NETNS_COOKIE (Linux before 5.14): namespaces are told apart through procfs only")
	}
	c := exec.Command("true")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Wait()
	pid := c.Process.Pid
	for deadline := time.Now().Add(10 * time.Second); ; {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:])); len(f) > 0 && f[0] == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the child never became a zombie")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil {
		t.Log("this kernel still shows a zombie's ns link")
	}
	en := &Enricher{}
	for _, c := range []struct {
		cookie uint64
		want   string
	}{{self, "host"}, {self + 1, "other"}} {
		id := en.Enrich(Event{Tgid: uint32(pid), SendTgid: uint32(pid), Comm: "true", Netns: c.cookie})
		if id.Netns != c.want {
			t.Errorf("cookie %d (own %d): netns %q, want %q (%+v)", c.cookie, self, id.Netns, c.want, id)
		}
	}
}
