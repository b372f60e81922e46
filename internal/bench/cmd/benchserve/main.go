// Command benchserve serves the benchmark's loopback peers for runs by hand: a fake IMDS
// (IMDSv2, hop limit 1) and an EC2 API that refuses every call, as `make bench` uses them. It
// prints shell exports that point IMDS and every AWS endpoint at loopback, then serves until
// interrupted:
//
//	go run ./internal/bench/cmd/benchserve > /tmp/peers.sh &
//	. /tmp/peers.sh; ec2sec scan --root FIX/root --proc FIX/proc
package main

import (
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/ec2sec/ec2sec/internal/bench"
	"github.com/ec2sec/ec2sec/internal/fakeimds"
	"github.com/ec2sec/ec2sec/internal/testenv"
)

func main() {
	imds, stop := fakeimds.Start(nil)
	defer stop()
	ec2 := bench.DenyEC2()
	defer ec2.Close()

	// testenv's loopback environment (every AWS endpoint a closed port), then the peers.
	safe := testenv.Safe()
	safe["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = imds.URL
	safe["AWS_ENDPOINT_URL_EC2"] = ec2.URL
	keys := make([]string, 0, len(safe))
	for k := range safe {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("export %s=%q\n", k, safe[k])
	}
	fmt.Println("unset AWS_EC2_METADATA_DISABLED AWS_PROFILE AWS_CA_BUNDLE") // as benchcmp runs the agent
	os.Stdout.Sync()

	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM)
	<-c
}
