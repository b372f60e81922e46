//go:build !unix

package probes

import "io/fs"

// fileOwner reports no owner: Windows protects files with ACLs, which ec2sec does not read.
func fileOwner(fi fs.FileInfo) (uid int, ok bool) { return -1, false }
