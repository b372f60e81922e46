package procfs

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for procfs rows: status files, net/tcp tables, cmdline and fd links. The kernel
// writes these, but a fixture tree, another mount namespace or a hostile container can hand
// the agent anything. `go test` runs the seeds; `make fuzz` fuzzes.

// FuzzParseStatus: never panics; a parsed Uid line really was in the text.
func FuzzParseStatus(f *testing.F) {
	for _, s := range []string{
		"Name:\tsshd\nUmask:\t0022\nState:\tS (sleeping)\nPPid:\t1\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n",
		"Name:\tworker\nUid:\t1000\t1000\t1000\t1000\n",
		"Uid:\t1\n", "Uid:", "Name:\x00\xff\nUid:\t-1\t4294967296\n", "PPid: 99999999999999999999\nUid: 1 2\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && !bytes.Contains(b, []byte("Uid")) {
			t.Fatalf("no Uid line but parsed %+v", s)
		}
		if len(s.Name) > len(b) {
			t.Fatalf("name longer than the file")
		}
	})
}

// FuzzParseListeners: never panics, returns only LISTEN rows with an inode, at most one per
// line, and agrees with itself when the table is read again.
func FuzzParseListeners(f *testing.F) {
	for _, n := range []string{"tcp", "tcp6"} {
		if b, err := os.ReadFile(filepath.Join("..", "testdata", "procnet", n)); err == nil {
			f.Add(n, b)
		}
	}
	f.Add("tcp", []byte("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n"))
	f.Add("tcp6", []byte("   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1\n"))
	f.Add("tcp", []byte("0: zz:zz 0 0A a b c d e f\n\x00\xff 0A\n"))
	f.Fuzz(func(t *testing.T, proto string, b []byte) {
		ls, err := ParseListeners(proto, bytes.NewReader(b))
		if n := bytes.Count(b, []byte("\n")) + 1; len(ls) > n {
			t.Fatalf("%d listeners from %d lines", len(ls), n)
		}
		for _, l := range ls {
			if l.Proto != proto || !l.Addr.IsValid() {
				t.Fatalf("bad listener %+v", l)
			}
		}
		again, err2 := ParseListeners(proto, bytes.NewReader(b))
		if (err == nil) != (err2 == nil) || len(again) != len(ls) {
			t.Fatalf("not deterministic")
		}
	})
}

// FuzzParseHexAddr: an address that parses prints back to the same hex (for the 4- and
// 16-byte forms the kernel writes), so no address is misread.
func FuzzParseHexAddr(f *testing.F) {
	for _, s := range []string{"0100007F:0016", "00000000:1F90", "00000000000000000000000001000000:0016", "0000000000000000FFFF00000100007F:0050", ":", "0100007F:", "0100007F:10000", "GG00007F:0016"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := parseHexAddr(s)
		if err != nil {
			return
		}
		h, p, _ := strings.Cut(s, ":")
		port, _ := strconv.ParseUint(p, 16, 16)
		if uint64(ap.Port()) != port {
			t.Fatalf("%q: port %d, want %d", s, ap.Port(), port)
		}
		raw, _ := hex.DecodeString(h)
		var want []byte
		a := ap.Addr()
		if len(raw) == 16 {
			b := a.As16()
			want = b[:]
		} else {
			b := a.As4()
			want = b[:]
		}
		got := make([]byte, len(want))
		for i := 0; i < len(want); i += 4 {
			binary.NativeEndian.PutUint32(got[i:], binary.BigEndian.Uint32(want[i:]))
		}
		if !bytes.Equal(got, raw) {
			t.Fatalf("%q -> %s -> %x", s, ap, got)
		}
	})
}

// FuzzSocketInode: only "socket:[N]" yields an inode, and N is what it says.
func FuzzSocketInode(f *testing.F) {
	for _, s := range []string{"socket:[12345]", "socket:[]", "socket:[-1]", "pipe:[1]", "socket:[18446744073709551616]", "/dev/null"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ino, ok := SocketInode(s)
		if ok && s != fmt.Sprintf("socket:[%d]", ino) && !strings.HasPrefix(s, "socket:[+") && !strings.HasPrefix(s, "socket:[0") {
			t.Fatalf("%q -> %d", s, ino)
		}
	})
}

// FuzzCmdline: the arguments of a cmdline file are its NUL-separated fields, read at most
// 64 KiB, whatever bytes they hold.
func FuzzCmdline(f *testing.F) {
	for _, s := range []string{"/usr/sbin/sshd\x00-D\x00", "", "\x00\x00", "a", "bash\x00-c\x00echo \xff\x00", strings.Repeat("x\x00", 40000)} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "7"), 0o755); err != nil {
		f.Fatal(err)
	}
	p := FS{Dir: dir}
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(p.Path(7, "cmdline"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		args, err := p.Cmdline(7)
		if err != nil {
			t.Fatal(err)
		}
		want := b[:min(len(b), 64<<10)]
		want = bytes.TrimRight(want, "\x00")
		if got := strings.Join(args, "\x00"); got != string(want) {
			t.Fatalf("args %q, want the fields of %q", args, want)
		}
	})
}
