package procfs

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
)

// Bounds on socket tables and fd lists: a busy host has many connections, but only the
// LISTEN rows are kept, so memory stays small; the line bound keeps time bounded too.
const (
	maxNetLines  = 1 << 20
	maxNetLine   = 4 << 10
	maxFDsPerPID = 1 << 16
)

// tcpListen is the kernel's TCP_LISTEN state as /proc/net/tcp writes it.
const tcpListen = "0A"

// Listener is one TCP socket in LISTEN state.
type Listener struct {
	Proto string         // "tcp" or "tcp6"
	Addr  netip.AddrPort // local address; an IPv4-mapped v6 address is unmapped
	Inode uint64         // socket inode, to find the owning processes
	UID   int            // owner of the socket
}

// Loopback reports whether the listener only accepts connections from this host.
func (l Listener) Loopback() bool { return l.Addr.Addr().IsLoopback() }

// String returns "tcp://0.0.0.0:22" style names, used as result resources.
func (l Listener) String() string { return "tcp://" + l.Addr.String() }

// Listeners reads the LISTEN rows of <dir>/net/tcp and <dir>/net/tcp6. A missing tcp6 (IPv6
// disabled) is not an error; a missing tcp is.
func (p FS) Listeners() ([]Listener, error) {
	var out []Listener
	for _, proto := range []string{"tcp", "tcp6"} {
		ls, err := p.readListeners(proto)
		if err != nil {
			if proto == "tcp6" && errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, ls...)
	}
	return out, nil
}

func (p FS) readListeners(proto string) ([]Listener, error) {
	name := filepath.Join(p.Dir, "net", proto)
	f, err := openFile(name, p.kernel)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	ls, err := ParseListeners(proto, io.LimitReader(f, maxNetLines*maxNetLine))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return ls, nil
}

// ParseListeners parses a /proc/net/tcp or tcp6 table and returns its LISTEN rows. Malformed
// rows are skipped, not fatal: the table is the kernel's, and one odd row must not hide the rest.
func ParseListeners(proto string, r io.Reader) ([]Listener, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxNetLine)
	var out []Listener
	var f [10][]byte
	for n := 0; sc.Scan() && n < maxNetLines; n++ {
		// sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...
		if firstFields(sc.Bytes(), &f) < len(f) || string(f[3]) != tcpListen {
			continue
		}
		addr, err := parseHexAddr(string(f[1]))
		if err != nil {
			continue
		}
		inode, err := strconv.ParseUint(string(f[9]), 10, 64)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(string(f[7]))
		out = append(out, Listener{Proto: proto, Addr: addr, Inode: inode, UID: uid})
	}
	if err := sc.Err(); err != nil {
		return out, err
	}
	return out, nil
}

// firstFields fills f with the first len(f) space-separated fields of line (slices of it)
// and returns how many it found: only LISTEN rows are then converted, not every field of
// every row of a busy host's table.
func firstFields(line []byte, f *[10][]byte) int {
	n := 0
	for i := 0; i < len(line) && n < len(f); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			f[n] = line[i:j]
			n++
		}
		i = j
	}
	return n
}

// parseHexAddr decodes "0100007F:0016" (IPv4) or a 32-hex-digit IPv6 address. The kernel
// prints each 32-bit word in host byte order, so native endianness decodes the host's own
// tables (every EC2 architecture is little-endian).
func parseHexAddr(s string) (netip.AddrPort, error) {
	h, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port in %q", s)
	}
	raw, err := hex.DecodeString(h)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("bad address %q", s)
	}
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	var a netip.Addr
	if len(raw) == 4 {
		a = netip.AddrFrom4([4]byte(b[:4]))
	} else {
		a = netip.AddrFrom16(b).Unmap()
	}
	return netip.AddrPortFrom(a, uint16(port)), nil
}

// fdEntry is what one process's fd directory says: the wanted socket inodes it holds, or
// that it could not be listed.
type fdEntry struct {
	inodes     []uint64
	unreadable bool
}

// fdSockets reads the process's fds for the wanted socket inodes. A process that is gone is
// neither an owner nor unreadable.
func (p FS) fdSockets(pid int, wanted map[uint64]bool) fdEntry {
	if len(wanted) == 0 {
		// Nothing to attribute: only count what could not be seen, without reading links.
		err := p.fdReadable(pid)
		return fdEntry{unreadable: err != nil && !errors.Is(err, fs.ErrNotExist)}
	}
	inodes, err := p.socketInodes(pid)
	if err != nil {
		return fdEntry{unreadable: !errors.Is(err, fs.ErrNotExist)}
	}
	var e fdEntry
	for _, ino := range inodes {
		if wanted[ino] {
			e.inodes = append(e.inodes, ino)
		}
	}
	return e
}

// SocketInode parses an fd link target "socket:[12345]".
func SocketInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}
