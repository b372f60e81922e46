// SPDX-License-Identifier: (MIT OR GPL-2.0-only)
//
// imdswatch: which process asks the instance metadata service (IMDS) what, with or without a
// session token. Three programs, all on the cgroup v2 root, all costing nothing for traffic
// that is not IMDS's:
//
//   connect4/connect6  at connect(2), in the caller's context: when the destination is in
//                      `dests` (169.254.169.254:80, [fd00:ec2::254]:80, the endpoint override),
//                      record who connects in the socket's local storage.
//   sockops            when such a connection is established, put the socket in `imds_socks`.
//   sk_msg             on `imds_socks` only: read the request line and the header names of
//                      each request (bounded, across writes and iovecs) and send one event per
//                      request to the ring buffer: token PUT, v2 (token header present) or v1.
//
// Only the context structures of the UAPI are read (no kernel structs), so the object needs no
// CO-RE relocation and no kernel BTF; it needs Linux 5.8 (ring buffer, sk_msg socket storage
// and msg->sk, current pid/comm/netns cookie in connect hooks). Header values and bodies never
// leave the kernel: the parser keeps a few state bytes per socket and the event carries only
// the classification.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char __license[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1

// Event kinds and flags; userspace mirrors them (event.go).
#define KIND_TOKEN 1 // PUT /latest/api/token
#define KIND_V2 2    // a request with the X-aws-ec2-metadata-token header
#define KIND_V1 3    // a request without it

#define FLAG_CREDS 1         // the path holds iam/security-credentials
#define FLAG_TRUNCATED 2     // headers longer than the parser reads: classified on what it saw
#define FLAG_NO_CONNECT 4    // connected before the watcher: attributed at send time only
#define FLAG_SPLIT 8         // the request came in more than one write

// How much of each request the parser reads (request line plus header names) and how much of
// one write: IMDS requests are a few hundred bytes. A write is read WINDOW bytes per program
// run, one tail call per window: a loop of 256 bytes keeps the verifier's work small on every
// kernel (bpf_loop would need 5.17).
#define REQ_MAX 4096
#define WINDOW 256
#define MSG_MAX 4096

struct dest_key {
	__u8 addr[16]; // IPv6, or IPv4-mapped (::ffff:a.b.c.d)
	__u16 port;    // network byte order
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, struct dest_key);
	__type(value, __u8);
} dests SEC(".maps");

// Parser states.
#define ST_METHOD 0  // reading the method
#define ST_PATH 1    // reading the request target
#define ST_LINE 2    // rest of the request line, or of a header line
#define ST_NAME 3    // a header name
#define ST_EOL 4     // saw '\r' at a line's start: the headers end with the next '\n'
#define ST_SKIP 5    // not HTTP as we read it: ignore the rest of this write

struct conn {
	__u64 cookie;
	__u64 netns;
	__u64 cgroup;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	char comm[16];
	__u8 daddr[16];
	__u16 dport;
	__u8 family;
	__u8 no_connect;
	// Parser state for the request being read.
	__u16 req_bytes;
	__u8 state;
	__u8 pos;      // position in the method, the path pattern or the header name
	__u8 method;   // 1 = PUT, 2 = another method
	__u8 flags;    // FLAG_* gathered so far
	__u8 token;    // the token header was seen
	__u8 writes;   // writes seen for this request
	__u8 path_pos; // position in "iam/security-credentials"
	__u8 token_pos; // position in "/latest/api/token"
	__u16 scan_off; // where the current write is read from (tail calls)
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct conn);
} conns SEC(".maps");

// parsers[0] is imds_parse, which tail-calls itself window after window.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} parsers SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, __u64);
} imds_socks SEC(".maps");

struct event {
	__u64 ts;
	__u64 cookie;
	__u64 netns;
	__u64 cgroup;
	__u32 pid;
	__u32 tgid;
	__u32 uid;
	__u32 gid;
	__u32 send_tgid;
	__u32 send_uid;
	__u16 req_bytes;
	__u16 dport;
	__u8 family;
	__u8 kind;
	__u8 flags;
	__u8 writes;
	__u8 daddr[16];
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// Counters userspace reads: 0 events sent, 1 events dropped (ring buffer full), 2 sockets
// added to imds_socks, 3 sockets that could not be added.
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

// Force the event type into the object's BTF for bpf2go.
const struct event *unused_event __attribute__((unused));

// RD reads a 4-byte context field on its own: the kernel refuses the 8-byte loads clang would
// merge neighbouring fields into.
#define RD(x) (*(volatile __u32 *)&(x))

static __always_inline void count(__u32 i)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &i);
	if (v)
		__sync_fetch_and_add(v, 1);
}

static __always_inline int is_dest(struct dest_key *k)
{
	return bpf_map_lookup_elem(&dests, k) != 0;
}

static __always_inline void v4key(struct dest_key *k, __u32 ip4, __u16 port)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->addr[10] = 0xff;
	k->addr[11] = 0xff;
	__builtin_memcpy(&k->addr[12], &ip4, 4);
	k->port = port;
}

static __always_inline void v6key(struct dest_key *k, __u32 a0, __u32 a1, __u32 a2, __u32 a3, __u16 port)
{
	__builtin_memset(k, 0, sizeof(*k));
	__builtin_memcpy(&k->addr[0], &a0, 4);
	__builtin_memcpy(&k->addr[4], &a1, 4);
	__builtin_memcpy(&k->addr[8], &a2, 4);
	__builtin_memcpy(&k->addr[12], &a3, 4);
	k->port = port;
}

static __always_inline void remember(struct bpf_sock_addr *ctx, struct dest_key *k, __u8 family)
{
	struct bpf_sock *sk = ctx->sk;
	if (!sk)
		return;
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!c)
		return;
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	c->cookie = bpf_get_socket_cookie(ctx);
	c->netns = bpf_get_netns_cookie(ctx);
	c->cgroup = bpf_get_current_cgroup_id();
	c->pid = (__u32)pt;
	c->tgid = pt >> 32;
	c->uid = (__u32)ug;
	c->gid = ug >> 32;
	bpf_get_current_comm(c->comm, sizeof(c->comm));
	__builtin_memcpy(c->daddr, k->addr, 16);
	c->dport = k->port;
	c->family = family;
	c->no_connect = 0;
	c->req_bytes = 0;
	c->state = ST_METHOD;
	c->pos = 0;
	c->method = 0;
	c->flags = 0;
	c->token = 0;
	c->writes = 0;
	c->path_pos = 0;
	c->token_pos = 0;
}

SEC("cgroup/connect4")
int imds_connect4(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return 1;
	struct dest_key k;
	v4key(&k, ctx->user_ip4, (__u16)ctx->user_port);
	if (is_dest(&k))
		remember(ctx, &k, AF_INET);
	return 1; // never refuse a connection
}

SEC("cgroup/connect6")
int imds_connect6(struct bpf_sock_addr *ctx)
{
	if (ctx->type != SOCK_STREAM)
		return 1;
	struct dest_key k;
	// An IPv4-mapped address (Java's dual-stack sockets) lands on the IPv4 entry.
	v6key(&k, RD(ctx->user_ip6[0]), RD(ctx->user_ip6[1]), RD(ctx->user_ip6[2]), RD(ctx->user_ip6[3]), (__u16)ctx->user_port);
	if (is_dest(&k))
		remember(ctx, &k, AF_INET6);
	return 1;
}

SEC("sockops")
int imds_sockops(struct bpf_sock_ops *skops)
{
	if (skops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB)
		return 1;
	struct dest_key k;
	// sock_ops keeps the remote port in network order in the upper 16 bits.
	__u16 port = (__u16)(skops->remote_port >> 16);
	if (skops->family == AF_INET)
		v4key(&k, skops->remote_ip4, port);
	else if (skops->family == AF_INET6)
		v6key(&k, RD(skops->remote_ip6[0]), RD(skops->remote_ip6[1]), RD(skops->remote_ip6[2]), RD(skops->remote_ip6[3]), port);
	else
		return 1;
	if (!is_dest(&k))
		return 1;
	__u64 cookie = bpf_get_socket_cookie(skops);
	if (bpf_sock_hash_update(skops, &imds_socks, &cookie, BPF_ANY) == 0)
		count(2);
	else
		count(3);
	return 1;
}

static __always_inline void emit(struct conn *c)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count(1);
		return;
	}
	__u64 pt = bpf_get_current_pid_tgid();
	__u64 ug = bpf_get_current_uid_gid();
	e->ts = bpf_ktime_get_ns();
	e->cookie = c->cookie;
	e->netns = c->netns;
	e->cgroup = c->cgroup;
	e->pid = c->pid;
	e->tgid = c->tgid;
	e->uid = c->uid;
	e->gid = c->gid;
	e->send_tgid = pt >> 32;
	e->send_uid = (__u32)ug;
	e->req_bytes = c->req_bytes;
	e->dport = c->dport;
	e->family = c->family;
	if (c->method == 1 && c->token_pos == 0xff)
		e->kind = KIND_TOKEN;
	else if (c->token)
		e->kind = KIND_V2;
	else
		e->kind = KIND_V1;
	e->flags = c->flags | (c->no_connect ? FLAG_NO_CONNECT : 0) | (c->writes > 1 ? FLAG_SPLIT : 0);
	e->writes = c->writes ? c->writes : 1;
	__builtin_memcpy(e->daddr, c->daddr, 16);
	__builtin_memcpy(e->comm, c->comm, 16);
	bpf_ringbuf_submit(e, 0);
	count(0);
}

static __always_inline void next_request(struct conn *c)
{
	c->req_bytes = 0;
	c->state = ST_METHOD;
	c->pos = 0;
	c->method = 0;
	c->flags = 0;
	c->token = 0;
	c->writes = 0;
	c->path_pos = 0;
	c->token_pos = 0;
}

static __always_inline __u8 lower(__u8 ch)
{
	return (ch >= 'A' && ch <= 'Z') ? ch + 32 : ch;
}

// The patterns, read one byte at a time by position (a switch the verifier bounds).
#define CREDS "iam/security-credentials"
#define CREDS_LEN 24
#define TOKENPATH "/latest/api/token"
#define TOKENPATH_LEN 17
#define HEADER "x-aws-ec2-metadata-token"
#define HEADER_LEN 24

static __always_inline __u8 at(const char *s, __u8 len, __u8 i)
{
	return i < len ? (__u8)s[i] : 0;
}

SEC("sk_msg")
int imds_msg(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return SK_PASS;
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c) {
		// Connected before the connect hook was attached: attribute at send time.
		c = bpf_sk_storage_get(&conns, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (!c)
			return SK_PASS;
		__u64 pt = bpf_get_current_pid_tgid();
		__u64 ug = bpf_get_current_uid_gid();
		c->pid = (__u32)pt;
		c->tgid = pt >> 32;
		c->uid = (__u32)ug;
		c->gid = ug >> 32;
		c->cgroup = bpf_get_current_cgroup_id();
		c->no_connect = 1;
		c->family = (__u8)msg->family;
		c->dport = (__u16)(msg->remote_port >> 16); // as in sock_ops
		next_request(c);
	}
	if (msg->size == 0)
		return SK_PASS;
	if (c->state == ST_SKIP)
		c->state = ST_METHOD; // a new write: look for a request again
	if (c->writes < 255)
		c->writes++;
	c->scan_off = 0;
	bpf_tail_call(msg, &parsers, 0);
	return SK_PASS;
}

SEC("sk_msg")
int imds_parse(struct sk_msg_md *msg)
{
	struct bpf_sock *sk = msg->sk;
	if (!sk)
		return SK_PASS;
	struct conn *c = bpf_sk_storage_get(&conns, sk, 0, 0);
	if (!c)
		return SK_PASS;
	__u32 size = msg->size;
	__u32 off = c->scan_off;
	if (off >= size || off >= MSG_MAX)
		return SK_PASS;
	__u32 stop = size - off < WINDOW ? size : off + WINDOW;
	// Make this window linear (the write may span pages and iovecs); data is then at off.
	if (bpf_msg_pull_data(msg, off, stop, 0))
		return SK_PASS;
	__u8 *data = msg->data;
	__u8 *end = msg->data_end;

#pragma clang loop unroll(disable)
	for (__u32 i = 0; i < WINDOW; i++) {
		__u8 *p = data + i;
		if (p + 1 > end)
			break;
		__u8 ch = *p;
		if (c->req_bytes < 0xffff)
			c->req_bytes++;
		switch (c->state) {
		case ST_METHOD:
			if (ch == ' ') {
				c->method = (c->pos == 3 && c->method == 1) ? 1 : 2;
				c->state = ST_PATH;
				c->pos = 0;
				break;
			}
			if (ch < 'A' || ch > 'Z' || c->pos >= 16) {
				// Not the start of a request (a body, or not HTTP): skip this write.
				next_request(c);
				c->state = ST_SKIP;
				return SK_PASS;
			}
			// "PUT" is recognised as it comes: method stays 1 while the bytes match.
			if (c->pos == 0)
				c->method = ch == 'P' ? 1 : 2;
			else if ((c->pos == 1 && ch != 'U') || (c->pos == 2 && ch != 'T'))
				c->method = 2;
			c->pos++;
			break;
		case ST_PATH:
			if (ch == ' ' || ch == '?' || ch == '\r' || ch == '\n') {
				// The token path must be the whole path.
				c->token_pos = c->token_pos == TOKENPATH_LEN ? 0xff : 0;
				c->state = ch == '\n' ? ST_NAME : ST_LINE;
				c->pos = 0;
				break;
			}
			if (c->path_pos < CREDS_LEN) {
				if (ch == at(CREDS, CREDS_LEN, c->path_pos))
					c->path_pos++;
				else
					c->path_pos = ch == 'i' ? 1 : 0;
				if (c->path_pos == CREDS_LEN)
					c->flags |= FLAG_CREDS;
			}
			if (c->token_pos < TOKENPATH_LEN)
				c->token_pos = ch == at(TOKENPATH, TOKENPATH_LEN, c->token_pos) ? c->token_pos + 1 : 0xfe;
			else if (c->token_pos == TOKENPATH_LEN)
				c->token_pos = 0xfe; // longer than the token path
			break;
		case ST_LINE:
			if (ch == '\n') {
				c->state = ST_NAME;
				c->pos = 0;
			}
			break;
		case ST_NAME:
			if (c->pos == 0 && ch == '\r') {
				c->state = ST_EOL;
				break;
			}
			if (c->pos == 0 && ch == '\n') {
				emit(c);
				next_request(c);
				break;
			}
			if (c->pos == HEADER_LEN) {
				if (ch == ':')
					c->token = 1;
				c->state = ST_LINE;
				break;
			}
			if (lower(ch) == at(HEADER, HEADER_LEN, c->pos)) {
				c->pos++;
				break;
			}
			c->state = ch == '\n' ? ST_NAME : ST_LINE;
			c->pos = 0;
			break;
		case ST_EOL:
			if (ch == '\n') {
				emit(c);
				next_request(c);
				break;
			}
			c->state = ST_LINE;
			break;
		default:
			return SK_PASS;
		}
		if (c->req_bytes >= REQ_MAX && c->state != ST_METHOD) {
			c->flags |= FLAG_TRUNCATED;
			emit(c);
			next_request(c);
			c->state = ST_SKIP;
			return SK_PASS;
		}
	}
	if (stop < size) {
		if (stop < MSG_MAX) {
			c->scan_off = stop;
			bpf_tail_call(msg, &parsers, 0);
		}
		// The rest of this write is not read: report what was seen.
		if (c->state != ST_METHOD) {
			c->flags |= FLAG_TRUNCATED;
			emit(c);
			next_request(c);
			c->state = ST_SKIP;
		}
	}
	return SK_PASS;
}
