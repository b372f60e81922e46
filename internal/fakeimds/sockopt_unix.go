//go:build unix

package fakeimds

import "syscall"

func setsockoptInt(fd uintptr, level, opt, v int) {
	syscall.SetsockoptInt(int(fd), level, opt, v)
}
