//go:build !unix

package probes

import "io/fs"

// fileOwner reports no owner: Windows protects files with ACLs, which ec2sec does not read.
func fileOwner(fi fs.FileInfo) (uid int, ok bool) { return -1, false }

// fileID: not known here; callers fall back to the path.
func fileID(fi fs.FileInfo) (id string, ok bool) { return "", false }

// hardLinked: not known here.
func hardLinked(fi fs.FileInfo) bool { return false }
