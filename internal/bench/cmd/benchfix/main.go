// Command benchfix writes the benchmark host fixture (see package bench) into a directory, for
// profiling by hand: ec2sec scan --root DIR/root --proc DIR/proc.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/ec2sec/ec2sec/internal/bench"
)

func main() {
	out := flag.String("out", "", "write the fixture into `DIR` (must not exist)")
	noSSH := flag.Bool("no-public-ssh", false, "a host whose sshd listens on loopback only (the scan walks every process's sockets)")
	flag.Parse()
	if *out == "" {
		fmt.Fprintln(os.Stderr, "usage: benchfix -out DIR")
		os.Exit(2)
	}
	if _, err := os.Stat(*out); err == nil {
		fmt.Fprintf(os.Stderr, "benchfix: %s exists\n", *out)
		os.Exit(2)
	}
	size := bench.Full
	if *noSSH {
		size = bench.FullNoPublicSSH
	}
	f, err := bench.BuildSize(*out, size)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchfix: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("root %s\nproc %s\nuser data %s\nplanted %v\n", f.Root, f.Proc, f.UserData, f.Planted)
}
