//go:build !linux

package probes

import "errors"

func mkfifo(string) error { return errors.New("no FIFOs on this platform") }
