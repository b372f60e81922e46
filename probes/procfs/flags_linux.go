package procfs

import "syscall"

// noFollowNonblock keeps a swapped-in FIFO or symlink from blocking or redirecting a read.
const noFollowNonblock = syscall.O_NOFOLLOW | syscall.O_NONBLOCK
