//go:build windows

package probes

import (
	"errors"
	"fmt"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/mgr"
)

// querySSMService asks the service manager for the service's state and start type, with
// query rights only (no administrator needed to look).
func querySSMService(name string) (ssmServiceState, error) {
	var st ssmServiceState
	m, err := windows.OpenSCManager(nil, nil, windows.SC_MANAGER_CONNECT)
	if err != nil {
		return st, fmt.Errorf("open service manager: %w", err)
	}
	defer windows.CloseServiceHandle(m)
	h, err := windows.OpenService(m, windows.StringToUTF16Ptr(name), windows.SERVICE_QUERY_STATUS|windows.SERVICE_QUERY_CONFIG)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("open service %s: %w", name, err)
	}
	s := &mgr.Service{Name: name, Handle: h}
	defer s.Close()
	st.exists = true
	status, err := s.Query()
	if err != nil {
		return st, fmt.Errorf("query service %s: %w", name, err)
	}
	cfg, err := s.Config()
	if err != nil {
		return st, fmt.Errorf("read service %s config: %w", name, err)
	}
	st.running = status.State == svc.Running
	st.automatic = cfg.StartType == mgr.StartAutomatic
	return st, nil
}
