// Command ssmpkg writes ec2sec's SSM Distributor package (zips and manifest.json) from what
// `make package` built; see package packaging.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/ec2sec/ec2sec/packaging"
)

func main() {
	repo := flag.String("repo", ".", "repository `DIR` (scripts, unit, config)")
	dist := flag.String("dist", "dist", "build output `DIR` (binaries, deb, rpm)")
	out := flag.String("out", "dist/ssm", "where to write the zips and manifest.json")
	version := flag.String("version", "", "package `VERSION` for the manifest")
	flag.Parse()
	if *version == "" {
		fmt.Fprintln(os.Stderr, "ssmpkg: -version is required")
		os.Exit(2)
	}
	// SOURCE_DATE_EPOCH (the commit time in `make package`) fixes the zip entries' times.
	var mtime time.Time
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			fmt.Fprintf(os.Stderr, "ssmpkg: SOURCE_DATE_EPOCH %q: %v\n", s, err)
			os.Exit(2)
		}
		mtime = time.Unix(n, 0)
	} else {
		mtime = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	m, err := packaging.Build(*repo, *dist, *out, *version, mtime)
	if err != nil {
		fmt.Fprintf(os.Stderr, "ssmpkg: %v\n", err)
		os.Exit(1)
	}
	for name, f := range m.Files {
		fmt.Printf("%s  %s\n", f.Checksums["sha256"], name)
	}
}
