package procfs_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ec2sec/ec2sec/internal/testenv"
	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/procfs/procfstest"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func fixtureTables(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, n := range []string{"tcp", "tcp6"} {
		b, err := os.ReadFile(filepath.Join("..", "testdata", "procnet", n))
		if err != nil {
			t.Fatal(err)
		}
		files["net/"+n] = string(b)
	}
	return files
}

func TestListenersFromFixture(t *testing.T) {
	dir := procfstest.Build(t, t.TempDir(), nil, fixtureTables(t))
	ls, err := procfs.FS{Dir: dir}.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, l := range ls {
		got = append(got, l.Proto+" "+l.Addr.String()+" "+map[bool]string{true: "loopback", false: "public"}[l.Loopback()])
	}
	want := []string{
		"tcp 0.0.0.0:22 public",
		"tcp 127.0.0.1:3306 loopback",
		"tcp 10.0.2.15:2222 public",
		"tcp6 [::]:22 public",
		"tcp6 [::1]:3306 loopback",
		"tcp6 127.0.0.1:8080 loopback", // IPv4-mapped, unmapped
	}
	if !slices.Equal(got, want) {
		t.Errorf("listeners:\n got %q\nwant %q", got, want)
	}
	if ls[1].UID != 105 || ls[0].Inode != 1001 {
		t.Errorf("uid/inode: %+v", ls[:2])
	}
}

func TestListenersWithoutTCP6(t *testing.T) {
	files := fixtureTables(t)
	delete(files, "net/tcp6")
	dir := procfstest.Build(t, t.TempDir(), nil, files)
	ls, err := procfs.FS{Dir: dir}.Listeners()
	if err != nil || len(ls) != 3 {
		t.Fatalf("got %d listeners, %v", len(ls), err)
	}
	if _, err := (procfs.FS{Dir: t.TempDir()}).Listeners(); err == nil {
		t.Error("a procfs without net/tcp must be an error")
	}
}

func TestSocketOwnersFromFixture(t *testing.T) {
	dir := procfstest.Build(t, t.TempDir(), []procfstest.Proc{
		{PID: 1, Comm: "systemd", Sockets: []uint64{1004, 77}},
		{PID: 812, Comm: "sshd", Exe: "/usr/sbin/sshd", Sockets: []uint64{1001, 1004}, Files: []string{"/dev/null", "pipe:[5]"}},
		{PID: 900, Comm: "mysqld", NoFD: true},
	}, fixtureTables(t))
	s, err := procfs.NewTable(dir).Sockets(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	owners := s.Owners
	if !slices.Equal(owners[1001], []int{812}) || !slices.Equal(owners[1004], []int{1, 812}) || len(owners[1002]) != 0 || len(owners[77]) != 0 {
		t.Errorf("owners %v", owners) // 77 is no listener
	}
	if s.Unreadable != 1 {
		t.Errorf("unreadable = %d, want 1", s.Unreadable)
	}
}

// TestListenersRealProc finds this test's own loopback listener in the real /proc, owned by
// this process.
func TestListenersRealProc(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("no /proc/net/tcp on this system")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	want := netip.MustParseAddrPort(l.Addr().String())
	p := procfs.FS{Dir: "/proc"}
	ls, err := p.Listeners()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(ls, func(x procfs.Listener) bool { return x.Addr == want })
	if i < 0 {
		t.Fatalf("listener %s not in /proc/net/tcp", want)
	}
	s, err := procfs.NewTable("/proc").Sockets(context.Background(), []int{os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(s.Owners[ls[i].Inode], os.Getpid()) {
		t.Errorf("owners of %s = %v, want this process %d", want, s.Owners[ls[i].Inode], os.Getpid())
	}
	if !ls[i].Loopback() || ls[i].String() != "tcp://"+want.String() {
		t.Errorf("listener %+v", ls[i])
	}
}

func TestSocketInode(t *testing.T) {
	for in, want := range map[string]uint64{"socket:[12345]": 12345, "socket:[]": 0, "pipe:[1]": 0, "socket:[1": 0, "/dev/null": 0} {
		got, ok := procfs.SocketInode(in)
		if got != want || ok != (want != 0) {
			t.Errorf("SocketInode(%q) = %d, %v", in, got, ok)
		}
	}
}

// BenchmarkParseListeners parses a busy host's table: 100k established rows and a few LISTEN
// rows; only the LISTEN rows are kept, so memory stays flat.
func BenchmarkParseListeners(b *testing.B) {
	var sb strings.Builder
	sb.WriteString("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n")
	for i := range 100_000 {
		st := "01"
		if i%10_000 == 0 {
			st = "0A"
		}
		fmt.Fprintf(&sb, "%6d: 0F02000A:%04X 0F02000B:D431 %s 00000000:00000000 02:000AFB6F 00000000     0        0 %d 2 0000000000000000 20 4 31 10 -1\n", i, i%65536, st, 5000+i)
	}
	table := sb.String()
	b.SetBytes(int64(len(table)))
	b.ReportAllocs()
	for b.Loop() {
		ls, err := procfs.ParseListeners("tcp", strings.NewReader(table))
		if err != nil || len(ls) != 10 {
			b.Fatalf("%d listeners, %v", len(ls), err)
		}
	}
}

func TestSocketOwnersStopsAtDeadline(t *testing.T) {
	dir := procfstest.Build(t, t.TempDir(), []procfstest.Proc{{PID: 1, Comm: "systemd", Sockets: []uint64{1001}}}, fixtureTables(t))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := procfs.NewTable(dir).Sockets(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want the walk stopped", err)
	}
}
