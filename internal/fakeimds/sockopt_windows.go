package fakeimds

import "syscall"

func setsockoptInt(fd uintptr, level, opt, v int) {
	syscall.SetsockoptInt(syscall.Handle(fd), level, opt, v)
}
