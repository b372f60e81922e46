package fakeec2

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Account and Region are moto's defaults, where Seed creates everything.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// Seeded names what Seed created.
type Seeded struct {
	InstanceID      string // the scanned instance, launched from Image
	ImageID         string // an AMI of this account, created from a first instance, public
	VPC             string // the instance's VPC: no flow log
	LoggedVPC       string // another VPC, with a flow log
	OpenGroup       string // 22 from 0.0.0.0/0, 2200-2300 from ::/0, 443 from 0.0.0.0/0
	ClosedGroup     string // 3389 from 10.0.0.0/8 only, 2022 from a /32
	PlainVolume     string // attached, unencrypted
	EncryptedVolume string // attached, encrypted
	RootVolume      string // the instance's root volume (moto's: unencrypted)
}

// IdentityDocument is the instance identity document IMDS would serve for the seeded instance.
func (s Seeded) IdentityDocument() string {
	b, _ := json.Marshal(map[string]string{
		"accountId": Account, "region": Region, "availabilityZone": Region + "a",
		"instanceId": s.InstanceID, "imageId": s.ImageID, "instanceType": "t3.micro",
		"privateIp": "10.0.0.12", "version": "2017-09-30",
	})
	return string(b)
}

// motoImage is one of the images moto_server starts with (moto.ec2.models.amis.EXAMPLE_AMI_ID).
const motoImage = "ami-12c6146b"

// Seed creates in moto (through c) an instance with the things the ec2api probe looks at:
// security groups with world-open and narrow rules, an unencrypted and an encrypted volume
// attached, a VPC without and one with a flow log, and a public AMI of this account the
// instance was launched from. The instance's metadata options are tokens, hop limit.
func Seed(t testing.TB, c *ec2.Client, tokens types.HttpTokensState, hop int32) Seeded {
	t.Helper()
	cx, cancel := ctx()
	defer cancel()
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("seed moto: %s: %v", what, err)
		}
	}
	var s Seeded
	vpc, err := c.CreateVpc(cx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.0.0.0/16")})
	must("CreateVpc", err)
	s.VPC = aws.ToString(vpc.Vpc.VpcId)
	subnet, err := c.CreateSubnet(cx, &ec2.CreateSubnetInput{VpcId: vpc.Vpc.VpcId, CidrBlock: aws.String("10.0.0.0/24"), AvailabilityZone: aws.String(Region + "a")})
	must("CreateSubnet", err)

	logged, err := c.CreateVpc(cx, &ec2.CreateVpcInput{CidrBlock: aws.String("10.1.0.0/16")})
	must("CreateVpc", err)
	s.LoggedVPC = aws.ToString(logged.Vpc.VpcId)
	_, err = c.CreateFlowLogs(cx, &ec2.CreateFlowLogsInput{
		ResourceIds: []string{s.LoggedVPC}, ResourceType: types.FlowLogsResourceTypeVpc,
		TrafficType: types.TrafficTypeAll, LogDestinationType: types.LogDestinationTypeCloudWatchLogs,
		LogGroupName:             aws.String("vpc-flow"),
		DeliverLogsPermissionArn: aws.String("arn:aws:iam::" + Account + ":role/flow"),
	})
	must("CreateFlowLogs", err)

	group := func(name string, perms []types.IpPermission) string {
		g, err := c.CreateSecurityGroup(cx, &ec2.CreateSecurityGroupInput{GroupName: aws.String(name), Description: aws.String(name), VpcId: vpc.Vpc.VpcId})
		must("CreateSecurityGroup", err)
		_, err = c.AuthorizeSecurityGroupIngress(cx, &ec2.AuthorizeSecurityGroupIngressInput{GroupId: g.GroupId, IpPermissions: perms})
		must("AuthorizeSecurityGroupIngress", err)
		return aws.ToString(g.GroupId)
	}
	tcp := func(from, to int32, v4, v6 string) types.IpPermission {
		p := types.IpPermission{IpProtocol: aws.String("tcp"), FromPort: aws.Int32(from), ToPort: aws.Int32(to)}
		if v4 != "" {
			p.IpRanges = []types.IpRange{{CidrIp: aws.String(v4)}}
		}
		if v6 != "" {
			p.Ipv6Ranges = []types.Ipv6Range{{CidrIpv6: aws.String(v6)}}
		}
		return p
	}
	s.OpenGroup = group("open", []types.IpPermission{
		tcp(22, 22, "0.0.0.0/0", ""), tcp(2200, 2300, "", "::/0"), tcp(443, 443, "0.0.0.0/0", "::/0"),
	})
	s.ClosedGroup = group("closed", []types.IpPermission{
		tcp(3389, 3389, "10.0.0.0/8", ""), tcp(2022, 2022, "203.0.113.7/32", ""),
	})

	// A first instance from one of moto's images, to make this account's AMI from. Asked for by
	// id (moto's EXAMPLE_AMI_ID): listing all of moto's 1,177 images (1 MB of XML) took it 15 to
	// 60 s on a busy machine, past the seeding deadline.
	imgs, err := c.DescribeImages(cx, &ec2.DescribeImagesInput{ImageIds: []string{motoImage}})
	must("DescribeImages", err)
	if len(imgs.Images) == 0 {
		t.Fatalf("seed moto: moto has no image %s", motoImage)
	}
	first, err := c.RunInstances(cx, &ec2.RunInstancesInput{ImageId: imgs.Images[0].ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1), SubnetId: subnet.Subnet.SubnetId})
	must("RunInstances", err)
	img, err := c.CreateImage(cx, &ec2.CreateImageInput{InstanceId: first.Instances[0].InstanceId, Name: aws.String("golden")})
	must("CreateImage", err)
	s.ImageID = aws.ToString(img.ImageId)
	_, err = c.ModifyImageAttribute(cx, &ec2.ModifyImageAttributeInput{
		ImageId:          img.ImageId,
		LaunchPermission: &types.LaunchPermissionModifications{Add: []types.LaunchPermission{{Group: types.PermissionGroupAll}}},
	})
	must("ModifyImageAttribute", err)

	run, err := c.RunInstances(cx, &ec2.RunInstancesInput{
		ImageId: img.ImageId, MinCount: aws.Int32(1), MaxCount: aws.Int32(1),
		SubnetId: subnet.Subnet.SubnetId, SecurityGroupIds: []string{s.OpenGroup, s.ClosedGroup},
		MetadataOptions: &types.InstanceMetadataOptionsRequest{HttpTokens: tokens, HttpPutResponseHopLimit: aws.Int32(hop), HttpEndpoint: types.InstanceMetadataEndpointStateEnabled},
	})
	must("RunInstances", err)
	s.InstanceID = aws.ToString(run.Instances[0].InstanceId)

	attach := func(encrypted bool, dev string) string {
		v, err := c.CreateVolume(cx, &ec2.CreateVolumeInput{AvailabilityZone: aws.String(Region + "a"), Size: aws.Int32(8), Encrypted: aws.Bool(encrypted)})
		must("CreateVolume", err)
		_, err = c.AttachVolume(cx, &ec2.AttachVolumeInput{VolumeId: v.VolumeId, InstanceId: aws.String(s.InstanceID), Device: aws.String(dev)})
		must("AttachVolume", err)
		return aws.ToString(v.VolumeId)
	}
	s.PlainVolume = attach(false, "/dev/sdf")
	s.EncryptedVolume = attach(true, "/dev/sdg")
	desc, err := c.DescribeInstances(cx, &ec2.DescribeInstancesInput{InstanceIds: []string{s.InstanceID}})
	must("DescribeInstances", err)
	for _, m := range desc.Reservations[0].Instances[0].BlockDeviceMappings {
		if id := aws.ToString(m.Ebs.VolumeId); id != s.PlainVolume && id != s.EncryptedVolume {
			s.RootVolume = id
		}
	}
	return s
}

// SetEBSDefaultEncryption turns EBS encryption by default on or off in moto.
func SetEBSDefaultEncryption(t testing.TB, c *ec2.Client, on bool) {
	t.Helper()
	cx, cancel := ctx()
	defer cancel()
	var err error
	if on {
		_, err = c.EnableEbsEncryptionByDefault(cx, &ec2.EnableEbsEncryptionByDefaultInput{})
	} else {
		_, err = c.DisableEbsEncryptionByDefault(cx, &ec2.DisableEbsEncryptionByDefaultInput{})
	}
	if err != nil {
		t.Fatalf("toggle EBS encryption by default: %v", err)
	}
}

// CreateLogGroup creates a CloudWatch Logs group in moto, so that a flow log delivering to it
// reports delivery SUCCESS (moto reports FAILED for a missing group, as AWS does). It speaks
// the JSON protocol directly; moto routes by the credential scope's service name.
func CreateLogGroup(t testing.TB, moto, name string) {
	t.Helper()
	cx, cancel := ctx()
	defer cancel()
	body, _ := json.Marshal(map[string]string{"logGroupName": name})
	req, err := http.NewRequestWithContext(cx, http.MethodPost, moto+"/", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", "Logs_20140328.CreateLogGroup")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20261128/"+Region+"/logs/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("create log group: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("create log group: HTTP %d: %s", resp.StatusCode, b)
	}
}
