package agent

import (
	"encoding/json"
	"time"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Host is the report's "host" object: who the host is (IMDS) and what its OS says
// (Facts, through gopsutil). Fields nobody gave are JSON null.
type Host struct {
	InstanceID string
	AccountID  string
	Region     string
	Partition  string
	AMIID      string
	Hostname   string
	Facts
}

func hostOf(id metadata.Identity, f Facts) Host {
	return Host{InstanceID: id.InstanceID, AccountID: id.AccountID, Region: id.Region, Partition: id.Partition, AMIID: id.AMIID, Hostname: id.Hostname, Facts: f}
}

// hostJSON is Host as written: the identity fields of the first ec2sec/v1 shape, then the
// OS facts added to it.
type hostJSON struct {
	InstanceID      *string    `json:"instance_id"`
	AccountID       *string    `json:"account_id"`
	Region          *string    `json:"region"`
	Partition       *string    `json:"partition"`
	AMIID           *string    `json:"ami_id"`
	Hostname        *string    `json:"hostname"`
	OS              *string    `json:"os"`
	Platform        *string    `json:"platform"`
	PlatformVersion *string    `json:"platform_version"`
	KernelVersion   *string    `json:"kernel_version"`
	Arch            *string    `json:"arch"`
	BootTime        *time.Time `json:"boot_time"`
	Virtualization  *string    `json:"virtualization"`
}

// MarshalJSON writes absent fields as null (docs/json.md).
func (h Host) MarshalJSON() ([]byte, error) {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	var boot *time.Time
	if !h.BootTime.IsZero() {
		boot = &h.BootTime
	}
	return json.Marshal(hostJSON{
		orNull(h.InstanceID), orNull(h.AccountID), orNull(h.Region), orNull(h.Partition), orNull(h.AMIID), orNull(h.Hostname),
		orNull(h.OS), orNull(h.Platform), orNull(h.PlatformVersion), orNull(h.KernelVersion), orNull(h.Arch), boot, orNull(h.Virtualization),
	})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Host) UnmarshalJSON(b []byte) error {
	var v hostJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	*h = Host{
		InstanceID: s(v.InstanceID), AccountID: s(v.AccountID), Region: s(v.Region), Partition: s(v.Partition), AMIID: s(v.AMIID), Hostname: s(v.Hostname),
		Facts: Facts{OS: s(v.OS), Platform: s(v.Platform), PlatformVersion: s(v.PlatformVersion), KernelVersion: s(v.KernelVersion), Arch: s(v.Arch), Virtualization: s(v.Virtualization)},
	}
	if v.BootTime != nil {
		h.BootTime = v.BootTime.UTC()
	}
	return nil
}
