package probes

import "syscall"

func mgmtMkfifo(p string) error { return syscall.Mkfifo(p, 0o644) }
