//go:build !linux

package probes

import "errors"

func mgmtMkfifo(string) error { return errors.New("no FIFOs on this platform") }
