package probes

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"

	"github.com/ec2sec/ec2sec/probes/metadata"
)

// EC2API is the part of the EC2 client the ec2api probe calls: read-only describe and get
// actions, one call of each per scan. *ec2.Client implements it; tests point a real client at
// moto_server or a fake.
type EC2API interface {
	DescribeInstances(context.Context, *ec2.DescribeInstancesInput, ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	DescribeSecurityGroups(context.Context, *ec2.DescribeSecurityGroupsInput, ...func(*ec2.Options)) (*ec2.DescribeSecurityGroupsOutput, error)
	DescribeVolumes(context.Context, *ec2.DescribeVolumesInput, ...func(*ec2.Options)) (*ec2.DescribeVolumesOutput, error)
	GetEbsEncryptionByDefault(context.Context, *ec2.GetEbsEncryptionByDefaultInput, ...func(*ec2.Options)) (*ec2.GetEbsEncryptionByDefaultOutput, error)
	DescribeFlowLogs(context.Context, *ec2.DescribeFlowLogsInput, ...func(*ec2.Options)) (*ec2.DescribeFlowLogsOutput, error)
	DescribeImages(context.Context, *ec2.DescribeImagesInput, ...func(*ec2.Options)) (*ec2.DescribeImagesOutput, error)
	GetSerialConsoleAccessStatus(context.Context, *ec2.GetSerialConsoleAccessStatusInput, ...func(*ec2.Options)) (*ec2.GetSerialConsoleAccessStatusOutput, error)
	// Options tells the region the client calls, which the probe's ARNs name.
	Options() ec2.Options
}

// ErrNoAWSCredentials is what Env.EC2 returns when the SDK's default credential chain finds
// nothing: the instance-view probe is then off (NOT_AVAILABLE), not failing.
var ErrNoAWSCredentials = errors.New("no AWS credentials found; the probe is off")

// EC2Actions are the IAM actions the ec2api probe uses, all read-only; the opt-in policy
// packaging/iam/ec2-describe-policy.json grants exactly these.
var EC2Actions = []string{
	"ec2:DescribeInstances", "ec2:DescribeSecurityGroups", "ec2:DescribeVolumes",
	"ec2:GetEbsEncryptionByDefault", "ec2:DescribeFlowLogs", "ec2:DescribeImages",
	"ec2:GetSerialConsoleAccessStatus",
}

// ec2CallTimeout bounds one EC2 API call (the SDK's retryer included); the probe deadline
// bounds them all.
const ec2CallTimeout = 5 * time.Second

// EC2APIProbe is the instance view: read-only EC2 API calls about this very instance (its
// security groups, volumes, VPC, AMI, metadata options) and its account's regional settings.
// It runs only with AWS credentials from the default chain. Correlations join its results
// with what the host probes measured (see Correlations and joinMetadataOptions).
type EC2APIProbe struct{}

// Name implements Probe.
func (EC2APIProbe) Name() string { return "ec2api" }

// Checks implements Probe.
func (EC2APIProbe) Checks() []Check {
	return []Check{
		{
			ID: "sg-world-open-admin-port", Probe: "ec2api", Severity: Critical,
			Title:      "A security group of this instance opens an administration port (SSH, RDP or sshd's port) to the whole internet",
			FailedWhen: "a security group of this instance allows 0.0.0.0/0 or ::/0 to 22, 3389 or a port where sshd listens",
			Practices:  []int{2}, CIS: []string{"5.2", "5.3"}, SecurityHub: []string{"EC2.19"},
			Remediation: Remediation{
				Text: "Remove the 0.0.0.0/0 and ::/0 ingress rules for the port (aws ec2 revoke-security-group-ingress); reach the instance through Session Manager, or allow only known source ranges.",
				URL:  "https://docs.aws.amazon.com/securityhub/latest/userguide/ec2-controls.html#ec2-19",
			},
		},
		{
			ID: "ebs-unencrypted-volume", Probe: "ec2api", Severity: High,
			Title:      "An EBS volume attached to this instance is not encrypted",
			FailedWhen: "an attached EBS volume is not encrypted",
			Practices:  []int{3}, SecurityHub: []string{"EC2.3"},
			Remediation: Remediation{
				Text: "Snapshot the volume, copy the snapshot with --encrypted, create a volume from the copy and swap it in; turn on EBS encryption by default so new volumes are encrypted.",
				URL:  "https://docs.aws.amazon.com/ebs/latest/userguide/ebs-encryption.html",
			},
		},
		{
			ID: "ebs-default-encryption-off", Probe: "ec2api", Severity: Medium,
			Title:      "EBS encryption by default is off in this region",
			FailedWhen: "EBS encryption by default is off in this region",
			Practices:  []int{3}, CIS: []string{"2.2.1"}, SecurityHub: []string{"EC2.7"},
			Remediation: Remediation{
				Text: "Turn it on for the region: aws ec2 enable-ebs-encryption-by-default --region <region>.",
				URL:  "https://docs.aws.amazon.com/ebs/latest/userguide/encryption-by-default.html",
			},
		},
		{
			ID: "vpc-flow-logs-off", Probe: "ec2api", Severity: Medium,
			Title:      "This instance's VPC has no flow log",
			FailedWhen: "this instance's VPC has no flow log",
			Practices:  []int{8}, CIS: []string{"3.9"}, SecurityHub: []string{"EC2.6"},
			Remediation: Remediation{
				Text: "Create a flow log for the VPC (aws ec2 create-flow-logs --resource-type VPC --resource-ids <vpc-id> --traffic-type REJECT or ALL) to CloudWatch Logs or S3.",
				URL:  "https://docs.aws.amazon.com/vpc/latest/userguide/flow-logs.html",
			},
		},
		{
			ID: "ami-public", Probe: "ec2api", Severity: Critical,
			Title:      "This instance's AMI is owned by this account and public",
			FailedWhen: "this instance's AMI is owned by this account and public",
			Practices:  []int{10},
			Remediation: Remediation{
				Text: "Make the AMI private (aws ec2 modify-image-attribute --image-id <ami> --launch-permission \"Remove=[{Group=all}]\") and turn on block public access for AMIs (aws ec2 enable-image-block-public-access).",
				URL:  "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/sharingamis-intro.html",
			},
		},
		{
			ID: "serial-console-access-enabled", Probe: "ec2api", Severity: Medium,
			Title:      "EC2 serial console access is enabled for the account in this region",
			FailedWhen: "EC2 serial console access is enabled for the account",
			Practices:  []int{11},
			Remediation: Remediation{
				Text: "Disable it unless an operator needs it now (aws ec2 disable-serial-console-access), and restrict ec2-instance-connect:SendSerialConsoleSSHPublicKey.",
				URL:  "https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/ec2-serial-console.html",
			},
		},
		{
			ID: "imds-metadata-options", Probe: "ec2api", Severity: High,
			Title:      "The instance's metadata options (HttpTokens, hop limit) are weak or disagree with what the host measured",
			FailedWhen: "the instance's MetadataOptions (HttpTokens, hop limit) disagree with what the imds probe measured, or are weak",
			Practices:  []int{1}, SecurityHub: []string{"EC2.8"},
			Remediation: Remediation{
				Text: "Require IMDSv2 with hop limit 1: aws ec2 modify-instance-metadata-options --instance-id <id> --http-tokens required --http-put-response-hop-limit 1; when the host measures something else, find the local proxy or redirect answering for IMDS.",
				URL:  imdsDocs,
			},
		},
	}
}

// Run implements Probe.
func (EC2APIProbe) Run(ctx context.Context, env *Env) ([]Result, error) {
	id := env.Identity
	if !id.OnEC2() || id.AccountID == "" {
		return nil, fmt.Errorf("no instance to describe: %s", cmp.Or(id.Reason, "IMDS gave no instance id and account"))
	}
	if env.EC2 == nil {
		return nil, ErrNoAWSCredentials
	}
	api, err := env.EC2(ctx)
	if err != nil {
		return nil, err
	}
	if api == nil {
		return nil, ErrNoAWSCredentials
	}
	v := &ec2View{api: api, id: id, region: api.Options().Region}
	if v.region == "" {
		v.region = id.Region
	}
	v.load(ctx, env)
	return slices.Concat(
		v.securityGroups(),
		v.volumes(),
		[]Result{v.defaultEncryption(), v.flowLogs(), v.amiPublic(), v.serialConsole(), v.metadataOptions()},
	), nil
}

// ec2View is one scan's answers from the EC2 API: every call made at most once, and every
// check built from these memoised answers.
type ec2View struct {
	api    EC2API
	id     metadata.Identity
	region string

	inst    *types.Instance
	instErr string // why inst is nil

	groups    []types.SecurityGroup
	groupsErr string
	vols      []types.Volume
	volsErr   string
	ebsDef    *bool
	ebsDefErr string
	flows     []types.FlowLog
	flowsErr  string
	image     *types.Image
	imageID   string
	imageErr  string
	serial    *bool
	serialErr string

	// sshPorts are the ports sshd listens on (non-loopback), when procfs shows them.
	sshPorts    []int
	sshPortsErr string
}

// load makes the calls in two concurrent waves: what needs only the identity first, then what
// needs the instance's description. Each call's answer or reason goes to its own fields.
func (v *ec2View) load(ctx context.Context, env *Env) {
	v.loadByIdentity(ctx, env)
	if v.inst == nil {
		v.withoutInstance()
		return
	}
	v.loadByInstance(ctx)
}

// loadByIdentity is the first wave: the calls that need only the identity (the instance,
// the region's settings, the AMI named in the identity document) and sshd's listeners.
func (v *ec2View) loadByIdentity(ctx context.Context, env *Env) {
	var wg sync.WaitGroup
	wg.Go(func() { v.loadInstance(ctx) })
	wg.Go(func() { v.loadEBSDefault(ctx) })
	wg.Go(func() { v.loadSerialConsole(ctx) })
	// The AMI is in the identity document: no need to wait for DescribeInstances.
	v.imageID = v.id.AMIID
	if v.imageID != "" {
		wg.Go(func() { v.loadImage(ctx) })
	}
	wg.Go(func() { v.sshPorts, v.sshPortsErr = sshdPublicPorts(ctx, env) })
	wg.Wait()
}

// withoutInstance gives every answer that needed the instance's description the reason it
// is missing (instErr).
func (v *ec2View) withoutInstance() {
	v.groupsErr, v.volsErr, v.flowsErr = v.instErr, v.instErr, v.instErr
	if v.imageID == "" {
		v.imageErr = v.instErr
	}
}

// loadByInstance is the second wave: the calls that need the instance's description (its
// AMI when the identity document named none, its security groups, volumes and VPC). Call it
// only once v.inst is set.
func (v *ec2View) loadByInstance(ctx context.Context) {
	var wg sync.WaitGroup
	if v.imageID == "" {
		v.imageID = aws.ToString(v.inst.ImageId)
		wg.Go(func() { v.loadImage(ctx) })
	}
	if ids := instanceGroupIDs(v.inst); len(ids) > 0 {
		wg.Go(func() { v.loadGroups(ctx, ids) })
	}
	if ids := instanceVolumeIDs(v.inst); len(ids) > 0 {
		wg.Go(func() { v.loadVolumes(ctx, ids) })
	}
	if vpc := aws.ToString(v.inst.VpcId); vpc != "" {
		wg.Go(func() { v.loadFlowLogs(ctx, vpc) })
	} else {
		v.flowsErr = "the instance is in no VPC"
	}
	wg.Wait()
}

// loadInstance describes this instance (v.inst), or says why it cannot (v.instErr): the call
// failed, or EC2 in this region does not know the instance id.
func (v *ec2View) loadInstance(ctx context.Context) {
	out, err := call(ctx, "DescribeInstances", func(ctx context.Context) (*ec2.DescribeInstancesOutput, error) {
		return v.api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{v.id.InstanceID}})
	})
	if err != nil {
		v.instErr = err.Error()
		return
	}
	for _, r := range out.Reservations {
		for i := range r.Instances {
			if aws.ToString(r.Instances[i].InstanceId) == v.id.InstanceID {
				v.inst = &r.Instances[i]
			}
		}
	}
	if v.inst == nil {
		v.instErr = fmt.Sprintf("EC2 in %s does not know instance %s (are the credentials of another account, or the configured region another region?)", v.region, v.id.InstanceID)
	}
}

// loadEBSDefault asks whether the region encrypts new EBS volumes by default (v.ebsDef); an
// answer without the flag is a reason (v.ebsDefErr), not a "no".
func (v *ec2View) loadEBSDefault(ctx context.Context) {
	out, err := call(ctx, "GetEbsEncryptionByDefault", func(ctx context.Context) (*ec2.GetEbsEncryptionByDefaultOutput, error) {
		return v.api.GetEbsEncryptionByDefault(ctx, &ec2.GetEbsEncryptionByDefaultInput{})
	})
	if err != nil {
		v.ebsDefErr = err.Error()
	} else if v.ebsDef = out.EbsEncryptionByDefault; v.ebsDef == nil {
		v.ebsDefErr = "GetEbsEncryptionByDefault answered without EbsEncryptionByDefault"
	}
}

// loadSerialConsole asks whether the account allows the serial console in the region
// (v.serial); an answer without the flag is a reason (v.serialErr), not a "no".
func (v *ec2View) loadSerialConsole(ctx context.Context) {
	out, err := call(ctx, "GetSerialConsoleAccessStatus", func(ctx context.Context) (*ec2.GetSerialConsoleAccessStatusOutput, error) {
		return v.api.GetSerialConsoleAccessStatus(ctx, &ec2.GetSerialConsoleAccessStatusInput{})
	})
	if err != nil {
		v.serialErr = err.Error()
	} else if v.serial = out.SerialConsoleAccessEnabled; v.serial == nil {
		v.serialErr = "GetSerialConsoleAccessStatus answered without SerialConsoleAccessEnabled"
	}
}

// loadGroups describes the security groups ids (the instance's and its interfaces').
func (v *ec2View) loadGroups(ctx context.Context, ids []string) {
	out, err := call(ctx, "DescribeSecurityGroups", func(ctx context.Context) (*ec2.DescribeSecurityGroupsOutput, error) {
		return v.api.DescribeSecurityGroups(ctx, &ec2.DescribeSecurityGroupsInput{GroupIds: ids})
	})
	if err != nil {
		v.groupsErr = err.Error()
	} else {
		v.groups = out.SecurityGroups
	}
}

// loadVolumes describes the EBS volumes ids (those attached to the instance).
func (v *ec2View) loadVolumes(ctx context.Context, ids []string) {
	out, err := call(ctx, "DescribeVolumes", func(ctx context.Context) (*ec2.DescribeVolumesOutput, error) {
		return v.api.DescribeVolumes(ctx, &ec2.DescribeVolumesInput{VolumeIds: ids})
	})
	if err != nil {
		v.volsErr = err.Error()
	} else {
		v.vols = out.Volumes
	}
}

// loadFlowLogs lists the flow logs of the instance's VPC vpc.
func (v *ec2View) loadFlowLogs(ctx context.Context, vpc string) {
	out, err := call(ctx, "DescribeFlowLogs", func(ctx context.Context) (*ec2.DescribeFlowLogsOutput, error) {
		return v.api.DescribeFlowLogs(ctx, &ec2.DescribeFlowLogsInput{
			Filter: []types.Filter{{Name: aws.String("resource-id"), Values: []string{vpc}}},
		})
	})
	if err != nil {
		v.flowsErr = err.Error()
	} else {
		v.flows = out.FlowLogs
	}
}

// loadImage describes the AMI v.imageID (v.image). An AMI EC2 does not list (deregistered, or
// private to its owner) leaves v.image nil and no reason: amiPublic then says it is not public.
func (v *ec2View) loadImage(ctx context.Context) {
	out, err := call(ctx, "DescribeImages", func(ctx context.Context) (*ec2.DescribeImagesOutput, error) {
		return v.api.DescribeImages(ctx, &ec2.DescribeImagesInput{ImageIds: []string{v.imageID}})
	})
	if err != nil {
		v.imageErr = err.Error()
		return
	}
	for i := range out.Images {
		if aws.ToString(out.Images[i].ImageId) == v.imageID {
			v.image = &out.Images[i]
		}
	}
}

// call makes one API call under its own timeout and turns its error into the reason a check
// is NOT_AVAILABLE: a missing permission names the IAM action to grant.
func call[T any](ctx context.Context, action string, f func(context.Context) (T, error)) (T, error) {
	cctx, cancel := context.WithTimeout(ctx, ec2CallTimeout)
	defer cancel()
	out, err := f(cctx)
	switch {
	case err == nil:
	case ctx.Err() != nil:
		return out, fmt.Errorf("the probe's deadline passed before ec2:%s answered", action)
	default:
		return out, errors.New(ec2Failure(action, err))
	}
	return out, nil
}

// ec2Failure explains a failed call in one sentence. Error messages are cut short: an
// UnauthorizedOperation carries a long encoded blob nobody reads in a finding.
func ec2Failure(action string, err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		switch code {
		case "UnauthorizedOperation", "Client.UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
			return fmt.Sprintf("no permission to call ec2:%s (%s): grant ec2:%s to the instance role to turn this check on", action, code, action)
		case "AuthFailure", "InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken", "RequestExpired", "SignatureDoesNotMatch":
			return fmt.Sprintf("ec2:%s: the AWS credentials were refused (%s)", action, code)
		}
		return fmt.Sprintf("ec2:%s failed: %s: %s", action, code, shorten(ae.ErrorMessage(), 200))
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Sprintf("ec2:%s did not answer within %s", action, ec2CallTimeout)
	}
	return fmt.Sprintf("ec2:%s failed: %s", action, shorten(err.Error(), 300))
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// instanceGroupIDs returns the security groups of the instance and of all its network
// interfaces (a secondary interface may carry other groups).
func instanceGroupIDs(inst *types.Instance) []string {
	var ids []string
	add := func(gs []types.GroupIdentifier) {
		for _, g := range gs {
			if id := aws.ToString(g.GroupId); id != "" && !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
	}
	add(inst.SecurityGroups)
	for _, ni := range inst.NetworkInterfaces {
		add(ni.Groups)
	}
	slices.Sort(ids)
	return ids
}

// instanceVolumeIDs returns the EBS volumes attached to the instance.
func instanceVolumeIDs(inst *types.Instance) []string {
	var ids []string
	for _, m := range inst.BlockDeviceMappings {
		if m.Ebs != nil && aws.ToString(m.Ebs.VolumeId) != "" {
			ids = append(ids, aws.ToString(m.Ebs.VolumeId))
		}
	}
	return ids
}

// sshdPublicPorts returns the ports sshd listens on at a non-loopback address, found in
// procfs the way the sshd probe finds them (the probes run concurrently, so this probe reads
// the listeners itself rather than waiting for the sshd probe's results).
func sshdPublicPorts(ctx context.Context, env *Env) ([]int, string) {
	if env.Proc == "" {
		return nil, "sockets are not visible without a procfs"
	}
	cfg, _ := loadSSHDConfig(env, sshdLayoutFor(runtime.GOOS))
	found, _, err := findSSHListeners(ctx, env, cfg)
	if err != nil {
		return nil, err.Error()
	}
	var ports []int
	for _, s := range found {
		if p := int(s.l.Addr.Port()); !s.l.Loopback() && !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	}
	slices.Sort(ports)
	return ports, ""
}
