package probes

// The ec2api probe's checks, each built from the scan's memoised API answers (ec2View).

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func (v *ec2View) arn(kind, id string) string {
	return fmt.Sprintf("arn:%s:ec2:%s:%s:%s/%s", v.id.Partition, v.region, v.id.AccountID, kind, id)
}

// accountResource names the account for regional account settings, as Security Hub names an
// AwsAccount resource.
func (v *ec2View) accountResource() string { return "AWS::::Account:" + v.id.AccountID }

// adminPort is a port the sg check looks at, and why.
type adminPort struct {
	port int
	why  string
}

func (v *ec2View) adminPorts() []adminPort {
	ports := []adminPort{{22, "SSH"}, {3389, "RDP"}}
	for _, p := range v.sshPorts {
		if i := slices.IndexFunc(ports, func(a adminPort) bool { return a.port == p }); i >= 0 {
			ports[i].why += ", sshd listens on it here"
		} else {
			ports = append(ports, adminPort{p, "sshd listens on it here"})
		}
	}
	return ports
}

// worldRule is one ingress rule open to the world that covers a port.
type worldRule struct {
	protocol, ports, source string
}

func (w worldRule) String() string { return w.protocol + " " + w.ports + " from " + w.source }

// worldOpen returns the rules of perms that let 0.0.0.0/0 or ::/0 reach TCP port p.
func worldOpen(perms []types.IpPermission, p int) []worldRule {
	var out []worldRule
	for _, perm := range perms {
		proto := strings.ToLower(aws.ToString(perm.IpProtocol))
		var ports string
		switch proto {
		case "-1", "all":
			proto, ports = "all", "all ports"
		case "tcp", "6":
			from, to := int(aws.ToInt32(perm.FromPort)), int(aws.ToInt32(perm.ToPort))
			if perm.FromPort == nil || perm.ToPort == nil || from == -1 {
				from, to = 0, 65535
			}
			if p < from || p > to {
				continue
			}
			proto, ports = "tcp", fmt.Sprintf("%d-%d", from, to)
			if from == to {
				ports = fmt.Sprint(from)
			}
		default:
			continue
		}
		for _, r := range perm.IpRanges {
			if aws.ToString(r.CidrIp) == "0.0.0.0/0" {
				out = append(out, worldRule{proto, ports, "0.0.0.0/0"})
			}
		}
		for _, r := range perm.Ipv6Ranges {
			if aws.ToString(r.CidrIpv6) == "::/0" {
				out = append(out, worldRule{proto, ports, "::/0"})
			}
		}
	}
	return out
}

func (v *ec2View) securityGroups() []Result {
	const check = "sg-world-open-admin-port"
	if v.groupsErr != "" {
		return []Result{NewResult(check, NotAvailable, "", v.groupsErr)}
	}
	admin := v.adminPorts()
	var checked []int
	for _, a := range admin {
		checked = append(checked, a.port)
	}
	var out []Result
	var names []string
	for _, g := range v.groups {
		gid := aws.ToString(g.GroupId)
		names = append(names, gid)
		for _, a := range admin {
			rules := worldOpen(g.IpPermissions, a.port)
			if len(rules) == 0 {
				continue
			}
			var desc, sources []string
			for _, r := range rules {
				desc = append(desc, r.String())
				if !slices.Contains(sources, r.source) {
					sources = append(sources, r.source)
				}
			}
			r := NewResult(check, Failed, v.arn("security-group", gid),
				fmt.Sprintf("security group %s (%s) lets %s reach TCP port %d (%s)", gid, aws.ToString(g.GroupName), strings.Join(sources, " and "), a.port, a.why)).
				With("group_id", gid).With("group_name", aws.ToString(g.GroupName)).
				With("port", a.port).With("port_use", a.why).With("sources", sources).With("rules", desc).
				With("sshd_listens", slices.Contains(v.sshPorts, a.port)).
				// One result per group and port, each fixable by itself: the port keeps their ids apart.
				WithKey(fmt.Sprintf("port/%d", a.port))
			if ip := aws.ToString(v.inst.PublicIpAddress); ip != "" {
				r = r.With("public_ip", ip)
			}
			out = append(out, r)
		}
	}
	if len(out) > 0 {
		return out
	}
	r := NewResult(check, Passed, "", fmt.Sprintf("no security group of this instance opens TCP %s to 0.0.0.0/0 or ::/0", joinInts(checked))).
		With("groups", nonNil(names)).With("ports_checked", checked)
	if len(v.groups) == 0 {
		r.Reason = "the instance has no security group"
	}
	if v.sshPortsErr != "" {
		r = r.With("sshd_ports", "unknown: "+v.sshPortsErr)
	}
	return []Result{r}
}

func (v *ec2View) volumes() []Result {
	const check = "ebs-unencrypted-volume"
	if v.volsErr != "" {
		return []Result{NewResult(check, NotAvailable, "", v.volsErr)}
	}
	device := map[string]string{}
	if v.inst != nil {
		for _, m := range v.inst.BlockDeviceMappings {
			if m.Ebs != nil {
				device[aws.ToString(m.Ebs.VolumeId)] = aws.ToString(m.DeviceName)
			}
		}
	}
	var out []Result
	var encrypted []string
	for _, vol := range v.vols {
		vid := aws.ToString(vol.VolumeId)
		if aws.ToBool(vol.Encrypted) {
			encrypted = append(encrypted, vid)
			continue
		}
		out = append(out, NewResult(check, Failed, v.arn("volume", vid),
			fmt.Sprintf("EBS volume %s (%s) is not encrypted", vid, device[vid])).
			With("volume_id", vid).With("device", device[vid]).
			With("size_gib", aws.ToInt32(vol.Size)).With("volume_type", string(vol.VolumeType)))
	}
	if len(out) > 0 {
		return out
	}
	r := NewResult(check, Passed, "", fmt.Sprintf("all %d attached EBS volumes are encrypted", len(encrypted))).
		With("volumes", nonNil(encrypted))
	if len(v.vols) == 0 {
		r.Reason = "no EBS volume is attached (instance store only)"
	}
	return []Result{r}
}

func (v *ec2View) defaultEncryption() Result {
	const check = "ebs-default-encryption-off"
	res := v.accountResource()
	if v.ebsDefErr != "" {
		return NewResult(check, NotAvailable, res, v.ebsDefErr)
	}
	if *v.ebsDef {
		return NewResult(check, Passed, res, fmt.Sprintf("EBS encryption by default is on in %s", v.region)).With("region", v.region)
	}
	return NewResult(check, Failed, res, fmt.Sprintf("EBS encryption by default is off in %s: new volumes and snapshot copies may be unencrypted", v.region)).With("region", v.region)
}

func (v *ec2View) flowLogs() Result {
	const check = "vpc-flow-logs-off"
	if v.flowsErr != "" {
		return NewResult(check, NotAvailable, "", v.flowsErr)
	}
	vpc := aws.ToString(v.inst.VpcId)
	res := v.arn("vpc", vpc)
	if len(v.flows) == 0 {
		return NewResult(check, Failed, res, fmt.Sprintf("VPC %s has no flow log: this instance's traffic is not recorded", vpc)).With("vpc_id", vpc)
	}
	var ids, failing []string
	for _, f := range v.flows {
		ids = append(ids, aws.ToString(f.FlowLogId))
		if strings.EqualFold(aws.ToString(f.DeliverLogsStatus), "FAILED") {
			failing = append(failing, fmt.Sprintf("%s (%s)", aws.ToString(f.FlowLogId), aws.ToString(f.DeliverLogsErrorMessage)))
		}
	}
	r := NewResult(check, Passed, res, fmt.Sprintf("VPC %s has %d flow log(s)", vpc, len(ids))).
		With("vpc_id", vpc).With("flow_logs", ids).
		With("traffic_types", flowTrafficTypes(v.flows))
	if len(failing) == len(ids) {
		r.Status = Warning
		r.Reason = fmt.Sprintf("VPC %s has flow logs, but every one fails to deliver: %s", vpc, strings.Join(failing, ", "))
	}
	return r
}

func flowTrafficTypes(fs []types.FlowLog) []string {
	var out []string
	for _, f := range fs {
		if t := string(f.TrafficType); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return nonNil(out)
}

func (v *ec2View) amiPublic() Result {
	const check = "ami-public"
	if v.imageErr != "" {
		return NewResult(check, NotAvailable, "", v.imageErr)
	}
	res := fmt.Sprintf("arn:%s:ec2:%s::image/%s", v.id.Partition, v.region, v.imageID)
	if v.image == nil {
		return NewResult(check, Passed, res, fmt.Sprintf("AMI %s is not visible to this account (deregistered, or private to its owner), so it is not public", v.imageID)).
			With("image_id", v.imageID)
	}
	owner, public := aws.ToString(v.image.OwnerId), aws.ToBool(v.image.Public)
	r := NewResult(check, Passed, res, "").With("image_id", v.imageID).With("owner_id", owner).With("public", public)
	switch {
	case owner != v.id.AccountID:
		r.Reason = fmt.Sprintf("AMI %s is owned by account %s, not by this account", v.imageID, owner)
	case public:
		r.Status = Failed
		r.Reason = fmt.Sprintf("AMI %s (%s) is owned by this account and public: anyone can launch it and read what was baked into it", v.imageID, aws.ToString(v.image.Name))
	default:
		r.Reason = fmt.Sprintf("AMI %s is owned by this account and not public", v.imageID)
	}
	return r
}

func (v *ec2View) serialConsole() Result {
	const check = "serial-console-access-enabled"
	res := v.accountResource()
	if v.serialErr != "" {
		return NewResult(check, NotAvailable, res, v.serialErr)
	}
	if *v.serial {
		return NewResult(check, Failed, res, fmt.Sprintf("EC2 serial console access is enabled for the account in %s: anyone allowed to push a serial console key can reach a login prompt", v.region)).With("region", v.region)
	}
	return NewResult(check, Passed, res, fmt.Sprintf("EC2 serial console access is disabled for the account in %s", v.region)).With("region", v.region)
}

// Evidence keys of imds-metadata-options carrying the API's view; joinMetadataOptions reads
// them to compare with the imds probe's measurement.
const (
	evHTTPTokens   = "api_http_tokens"
	evHopLimit     = "api_hop_limit"
	evHTTPEndpoint = "api_http_endpoint"
	evOptionsState = "api_state"
)

// metadataOptions rates the API's MetadataOptions on their own; the scan's correlation step
// (joinMetadataOptions) then compares them with what the imds probe measured.
func (v *ec2View) metadataOptions() Result {
	const check = "imds-metadata-options"
	if v.inst == nil {
		return NewResult(check, NotAvailable, "", v.instErr)
	}
	mo := v.inst.MetadataOptions
	if mo == nil {
		return NewResult(check, NotAvailable, "", "DescribeInstances gave no MetadataOptions for this instance")
	}
	tokens, endpoint := string(mo.HttpTokens), string(mo.HttpEndpoint)
	hop := int(aws.ToInt32(mo.HttpPutResponseHopLimit))
	r := NewResult(check, Passed, "", "").
		With(evHTTPTokens, tokens).With(evHopLimit, hop).With(evHTTPEndpoint, endpoint).
		With(evOptionsState, string(mo.State))
	switch {
	case endpoint == string(types.InstanceMetadataEndpointStateDisabled):
		r.Reason = "the instance's metadata endpoint is disabled (HttpEndpoint disabled)"
	case tokens != string(types.HttpTokensStateRequired):
		r.Status = Failed
		r.Reason = fmt.Sprintf("the instance's MetadataOptions allow IMDSv1 (HttpTokens %s)", cmp.Or(tokens, "unset"))
	case hop > 1:
		// The imds-hop-limit check rates the hop limit against the container runtimes here.
		r.Status, r.Severity = Warning, Low
		r.Reason = fmt.Sprintf("the instance's MetadataOptions require IMDSv2, but the hop limit is %d: tokens reach %d hop(s) beyond the host", hop, hop-1)
	default:
		r.Reason = fmt.Sprintf("the instance's MetadataOptions require IMDSv2 with hop limit %d", hop)
	}
	return r
}
