//go:build !linux && !windows

package service

import "fmt"

func platformOptions(opt map[string]any) error { return nil }

func supported(platform string) error {
	return fmt.Errorf("service manager %q is not supported: ec2sec runs as a service on Linux (systemd) and Windows", platform)
}

func platformHost() host {
	return host{installed: statusInstalled, packaged: func() string { return "" }}
}

func underSCM() bool { return false }
