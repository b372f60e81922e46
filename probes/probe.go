// Package probes holds ec2sec's probes, one file each, and the check catalog they make up.
//
// A probe looks at one aspect of the host and returns results for its checks. It gets
// everything it touches through Env (root and procfs dirs, IMDS, clock, logger, dialer,
// timeouts), so tests run it against fixture trees and fakes, and it keeps no package state.
package probes

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/ec2sec/ec2sec/probes/hostfs"
	"github.com/ec2sec/ec2sec/probes/imdswatch"
	"github.com/ec2sec/ec2sec/probes/metadata"
	"github.com/ec2sec/ec2sec/probes/procfs"
	"github.com/ec2sec/ec2sec/probes/secrets"
)

// Probe is one plug-in. Run must honour ctx (the scan gives each probe its own deadline), must
// not panic on any input (the scan recovers, but the probe's results are then lost), and must
// return at least one result per check it ran; the scan reports NOT_AVAILABLE for any of
// Checks() that got none. An error means the probe could not look at all: every check it
// owns becomes NOT_AVAILABLE with the error as the reason. Probes do not retry; a result that
// could not be had is NOT_AVAILABLE and the next scan looks again.
type Probe interface {
	Name() string
	Checks() []Check
	Run(ctx context.Context, env *Env) ([]Result, error)
}

// Env is what a probe may touch. The scan builds one per probe.
type Env struct {
	// Root is the host's filesystem root ("/" or a mounted image); FS reads under it.
	Root string
	FS   *hostfs.FS
	// Proc is the procfs directory, or "" when processes cannot be seen (an offline image).
	Proc string
	// Procs is Proc's process list (pids and comm names), read once per scan and shared;
	// nil when Proc is "" or the caller built the Env by hand (see Env.processes).
	Procs *procfs.Table
	// IMDS reaches the instance metadata service; Identity is what the scan learnt from it.
	IMDS     *metadata.Client
	Identity metadata.Identity
	// Offline: Root is an image, not the running host (--root without --proc). IMDS, the
	// EC2 API and the network describe the instance the scan runs on, not the image: the scan
	// asks none of them (Identity says why), and no probe may dial out for the image.
	Offline bool
	// Now is the clock; Log is the probe's logger (already tagged with the probe name).
	Now func() time.Time
	Log *slog.Logger
	// Dial opens network connections for reachability checks; tests point it at loopback.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Resolver looks up host names for reachability checks; tests replace it.
	Resolver *net.Resolver
	// DialTimeout bounds one connection attempt, HTTPTimeout one HTTP exchange.
	DialTimeout time.Duration
	HTTPTimeout time.Duration
	// Getenv reads the agent's environment (os.Getenv in the agent); probes never call
	// os.Getenv themselves, so tests can inject endpoint overrides.
	Getenv func(string) string
	// Secrets finds secrets (built once per process, shared); FingerprintKey keys the HMAC
	// fingerprints of what it finds. Set for probes that implement SecretsUser.
	Secrets        *secrets.Detector
	FingerprintKey []byte
	// EC2 returns the scan's EC2 client (built once, lazily, from the SDK's default chain), or
	// ErrNoAWSCredentials when the chain finds none; nil when the scan gives no AWS access.
	EC2 func(ctx context.Context) (EC2API, error)
	// IMDSWatch returns the IMDS watcher's window (the daemon's summary in the state dir, or
	// the live table of `ec2sec imds-watch`); (nil, nil) when there is none. nil = no watcher.
	IMDSWatch func() (*imdswatch.Summary, error)
}

// All returns every probe, in catalog order.
func All() []Probe {
	return []Probe{
		IMDSProbe{},
		UserDataProbe{},
		CredentialsProbe{},
		SSMProbe{},
		SSHDProbe{},
		NetworkProbe{},
		ConsoleProbe{},
		EC2APIProbe{},
		IMDSWatchProbe{},
	}
}

// Catalog returns every check of every probe, in catalog order.
func Catalog() []Check {
	var out []Check
	for _, p := range All() {
		out = append(out, p.Checks()...)
	}
	return out
}

// Lookup returns the check with the given id.
func Lookup(id string) (Check, bool) {
	cat := Catalog()
	i := slices.IndexFunc(cat, func(c Check) bool { return c.ID == id })
	if i < 0 {
		return Check{}, false
	}
	return cat[i], true
}

// Select returns the probes of all named in names (all of them when names is empty), in
// their order, or an error naming the first unknown probe.
func Select(all []Probe, names []string) ([]Probe, error) {
	all = slices.Clone(all)
	if len(names) == 0 {
		return all, nil
	}
	for _, n := range names {
		if !slices.ContainsFunc(all, func(p Probe) bool { return p.Name() == n }) {
			return nil, fmt.Errorf("unknown probe %q (known: %s)", n, probeNames(all))
		}
	}
	return slices.DeleteFunc(all, func(p Probe) bool { return !slices.Contains(names, p.Name()) }), nil
}

func probeNames(ps []Probe) string {
	var s string
	for i, p := range ps {
		if i > 0 {
			s += ", "
		}
		s += p.Name()
	}
	return s
}
