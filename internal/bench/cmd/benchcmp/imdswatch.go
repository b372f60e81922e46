//go:build linux

package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
)

// The IMDS watcher's targets (issue 18): what it costs other traffic, that it misses no call
// under load, and (from the daemon measurement) the resident daemon with it loaded.
const (
	maxWatchSlowdown = 0.01 // loopback throughput with the watcher attached, at most 1 % lower
	watchRate        = 1000 // IMDS calls per second ...
	watchDaemonMiB   = 25   // the run daemon's RSS with the watcher loaded
)

type watchResult struct {
	markdown string
	targets  []target
}

// imdsWatchBench measures the watcher in this process (it needs root: CAP_BPF, CAP_PERFMON,
// CAP_NET_ADMIN). daemonRSS (KiB) and daemonLog come from the daemon measurement, which
// loads the watcher too when it can.
func imdsWatchBench(quick bool, daemonRSS int64, daemonWakeups float64, daemonLog string) watchResult {
	var res watchResult
	var b strings.Builder
	w, err := imdswatch.Load(imdswatch.Options{Dests: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:9")}})
	if err != nil {
		res.markdown = fmt.Sprintf("Not measured: %v (run `make bench` as root).\n", err)
		res.targets = []target{{"IMDS watcher: loopback TCP throughput with it attached", "≤ 1 % slower", "not measured", "SKIP"}}
		return res
	}
	w.Close()

	// 1. Other traffic: many small writes over loopback TCP, rounds alternating without and
	// with the watcher, in the same run; each round a new connection, so the connect and
	// sockops hooks run for it.
	// Pairs of rounds, without then with, each ratio taken within its pair: this shared
	// machine's speed drifts by tens of percent between runs, which a median over all
	// rounds of one kind mixes into the result, and a ratio of neighbours cancels.
	rounds, writes := 15, 200_000
	if quick {
		rounds, writes = 3, 50_000
	}
	var without, with, ratios []float64
	var runs uint64 // BPF program runs during the rounds with the watcher (kernel stats)
	stats, statsErr := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if statsErr == nil {
		defer stats.Close()
	}
	for i := 0; i < rounds; i++ {
		// Which round of a pair comes first alternates: the second of two runs is often the
		// faster (warm caches), which would otherwise favour one side.
		var wo float64
		if i%2 == 0 {
			wo = loopbackRate(writes)
		}
		w, err := imdswatch.Load(imdswatch.Options{})
		if err != nil {
			res.markdown = "Not measured: " + err.Error() + "\n"
			return res
		}
		before := watcherRuns()
		wi := loopbackRate(writes)
		runs += watcherRuns() - before
		w.Close()
		if i%2 == 1 {
			wo = loopbackRate(writes)
		}
		without, with = append(without, wo), append(with, wi)
		if wo > 0 {
			ratios = append(ratios, wi/wo)
		}
	}
	mw, mwo := medianF(with), medianF(without)
	slow := 1 - medianF(ratios)
	fmt.Fprintf(&b, "- Loopback TCP, %d writes of 64 bytes per round, %d pairs of rounds without and with the watcher attached (in turn first; each round a new connection), per CPU-second of the writing thread: median %.0f writes/s without, %.0f with; the median of the pairs' ratios: %+.2f %%.\n",
		writes, rounds, mwo, mw, -slow*100)
	if statsErr == nil {
		fmt.Fprintf(&b, "- The kernel's own count (BPF_ENABLE_STATS): the watcher's programs ran %d times over the %d rounds with it attached, %.1f a round of %d writes: per connection, never per write of traffic the watcher does not watch.\n",
			runs, rounds, float64(runs)/float64(rounds), writes)
	} else {
		fmt.Fprintf(&b, "- The kernel's run counts of the programs: not available (%v).\n", statsErr)
	}
	res.targets = append(res.targets, target{"IMDS watcher: loopback TCP throughput (many small writes) with it attached, same run", "≤ 1 % slower",
		fmt.Sprintf("%.0f vs %.0f writes/s, pairs' median %+.2f %%; program runs per round of %d writes: %.1f", mw, mwo, -slow*100, writes, float64(runs)/float64(max(rounds, 1))), verdict(slow <= maxWatchSlowdown)})

	// 2. 1,000 IMDS calls per second against a fake IMDS on loopback, none missed.
	secs := 10
	if quick {
		secs = 2
	}
	sent, seen, dropped, err := imdsLoad(watchRate, time.Duration(secs)*time.Second)
	if err != nil {
		fmt.Fprintf(&b, "- %d IMDS calls/s: not measured: %v\n", watchRate, err)
	} else {
		fmt.Fprintf(&b, "- %d IMDS calls/s for %d s (v1 GETs over keep-alive connections to a fake IMDS on loopback, enriched and tabled as the daemon does): %d sent, %d reported, %d dropped by the kernel.\n",
			watchRate, secs, sent, seen, dropped)
	}
	res.targets = append(res.targets, target{fmt.Sprintf("IMDS watcher: %d calls/s for %d s", watchRate, secs), "none missed",
		fmt.Sprintf("%d sent, %d reported, %d dropped", sent, seen, dropped), verdict(err == nil && sent > 0 && seen == sent && dropped == 0)})

	// 3. The run daemon with the watcher loaded (measured by daemon()).
	loaded := strings.Contains(daemonLog, "IMDS watcher loaded")
	got := "not measured"
	v := "SKIP"
	if daemonRSS >= 0 {
		got = fmt.Sprintf("%s, %.2f wake-ups/s idle (watcher loaded: %v)", mib(daemonRSS), daemonWakeups, loaded)
		v = verdict(loaded && daemonRSS <= watchDaemonMiB*1024 && daemonWakeups < 1)
	}
	fmt.Fprintf(&b, "- The `run` daemon, measured as in the daemon line above but with the watcher loaded in it (its log says so: %v), as root without systemd runs it: %s RSS, %.2f context switches a second while idle. (Under the shipped units the watcher runs in ec2sec-imdswatch.service instead.) The watcher's goroutine blocks in epoll on the ring buffer: no timer, no wake-up while nobody calls IMDS.\n", loaded, mib(daemonRSS), daemonWakeups)
	res.targets = append(res.targets, target{"`run` daemon with the IMDS watcher: RSS, idle wake-ups", fmt.Sprintf("≤ %d MiB, none while idle", watchDaemonMiB), got, v})
	res.markdown = b.String()
	return res
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// loopbackRate writes n 64-byte messages over a fresh loopback TCP connection (a reader
// drains them) and returns writes per second.
func loopbackRate(n int) float64 {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0
	}
	defer c.Close()
	msg := make([]byte, 64)
	// CPU time of the writing thread (which also runs loopback delivery), not wall time: on a
	// shared machine wall time measures the neighbours.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var r0, r1 syscall.Rusage
	syscall.Getrusage(rusageThread, &r0)
	for i := 0; i < n; i++ {
		if _, err := c.Write(msg); err != nil {
			return 0
		}
	}
	syscall.Getrusage(rusageThread, &r1)
	cpu := time.Duration(r1.Utime.Nano() + r1.Stime.Nano() - r0.Utime.Nano() - r0.Stime.Nano())
	if cpu <= 0 {
		return 0
	}
	return float64(n) / cpu.Seconds()
}

const rusageThread = 1 // RUSAGE_THREAD

// imdsLoad sends rate v1 requests a second for d to a fake IMDS watched by a fresh watcher,
// and counts what the watcher reported.
func imdsLoad(rate int, d time.Duration) (sent, seen, dropped uint64, err error) {
	imds, stop := fakeimds.Start(nil)
	defer stop()
	imds.Set(func(s *fakeimds.Server) { s.V1 = true })
	dest := netip.MustParseAddrPort(strings.TrimPrefix(imds.URL, "http://"))
	w, err := imdswatch.Load(imdswatch.Options{Dests: []netip.AddrPort{dest}})
	if err != nil {
		return 0, 0, 0, err
	}
	tab := imdswatch.NewTable(nil, nil)
	var n atomic.Uint64
	served := make(chan struct{})
	go func() {
		defer close(served)
		imdswatch.Serve(w, &imdswatch.Enricher{}, tab, func(imdswatch.Event, imdswatch.Identity) { n.Add(1) })
	}()
	// A pacer hands out one request per tick to 8 senders, so a slow answer does not lower
	// the rate.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	var nsent atomic.Uint64
	work := make(chan struct{}, rate)
	done := make(chan struct{})
	for range 8 {
		go func() {
			for range work {
				resp, err := client.Get(imds.URL + "/latest/meta-data/instance-id")
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				nsent.Add(1)
			}
			done <- struct{}{}
		}()
	}
	// Requests due by the elapsed time, so a late tick does not lower the rate.
	start, total := time.Now(), uint64(rate)*uint64(d/time.Millisecond)/1000
	for pushed := uint64(0); pushed < total; {
		due := min(total, uint64(float64(rate)*time.Since(start).Seconds()))
		for ; pushed < due; pushed++ {
			work <- struct{}{}
		}
		time.Sleep(time.Millisecond)
	}
	close(work)
	for range 8 {
		<-done
	}
	sent = nsent.Load()
	// Let the reader drain what is in the ring buffer.
	for i := 0; i < 50 && n.Load() < sent; i++ {
		time.Sleep(20 * time.Millisecond)
	}
	st, _ := w.Stats()
	w.Close()
	<-served
	return sent, n.Load(), st.Dropped, nil
}

// imdsWatchOnly runs only this section (benchcmp -imdswatch-only) and prints it.
func imdsWatchOnly(quick bool) {
	res := imdsWatchBench(quick, -1, 0, "")
	os.Stdout.WriteString(res.markdown)
	for _, t := range res.targets {
		fmt.Printf("%-5s %s: %s (want %s)\n", t.verdict, t.what, t.got, t.want)
	}
}

// watcherRuns is how often the kernel has run the loaded programs named imds_* (the
// watcher's), with run-time stats enabled; 0 without.
func watcherRuns() uint64 {
	var n uint64
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return n
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		if info, err := p.Info(); err == nil && strings.HasPrefix(info.Name, "imds_") {
			if st, err := p.Stats(); err == nil {
				n += st.RunCount
			}
		}
		p.Close()
	}
}
