package agent

import (
	"encoding/json"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// Host is the report's "host" object; fields IMDS did not give are JSON null.
type Host struct {
	InstanceID string
	AccountID  string
	Region     string
	Partition  string
	AMIID      string
	Hostname   string
}

func hostOf(id metadata.Identity) Host {
	return Host{id.InstanceID, id.AccountID, id.Region, id.Partition, id.AMIID, id.Hostname}
}

// MarshalJSON writes absent fields as null (docs/json.md).
func (h Host) MarshalJSON() ([]byte, error) {
	orNull := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	return json.Marshal(struct {
		InstanceID *string `json:"instance_id"`
		AccountID  *string `json:"account_id"`
		Region     *string `json:"region"`
		Partition  *string `json:"partition"`
		AMIID      *string `json:"ami_id"`
		Hostname   *string `json:"hostname"`
	}{orNull(h.InstanceID), orNull(h.AccountID), orNull(h.Region), orNull(h.Partition), orNull(h.AMIID), orNull(h.Hostname)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (h *Host) UnmarshalJSON(b []byte) error {
	var v struct {
		InstanceID *string `json:"instance_id"`
		AccountID  *string `json:"account_id"`
		Region     *string `json:"region"`
		Partition  *string `json:"partition"`
		AMIID      *string `json:"ami_id"`
		Hostname   *string `json:"hostname"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	*h = Host{s(v.InstanceID), s(v.AccountID), s(v.Region), s(v.Partition), s(v.AMIID), s(v.Hostname)}
	return nil
}
