//go:build !windows

package probes

import "errors"

// querySSMService exists on Windows only; elsewhere the agent is a systemd unit.
func querySSMService(string) (ssmServiceState, error) {
	return ssmServiceState{}, errors.New("the Windows service manager exists on Windows only")
}
