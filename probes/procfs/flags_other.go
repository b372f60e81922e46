//go:build !linux

package procfs

const noFollowNonblock = 0
