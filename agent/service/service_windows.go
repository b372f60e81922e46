package service

import (
	"time"

	ksvc "github.com/kardianos/service"
)

// platformOptions sets the Windows service up like the systemd unit: automatic (delayed) start
// and a restart a minute after a failure.
func platformOptions(opt map[string]any) error {
	opt["StartType"] = "automatic"
	opt["DelayedAutoStart"] = true
	opt["OnFailure"] = "restart"
	opt["OnFailureDelayDuration"] = "1m"
	opt["OnFailureResetPeriod"] = 86400
	return nil
}

func supported(platform string) error { return nil }

func platformHost() host {
	return host{installed: statusInstalled, packaged: func() string { return "" }, settle: 30 * time.Second}
}

// underSCM reports whether the Service Control Manager started this process.
func underSCM() bool { return !ksvc.Interactive() }
