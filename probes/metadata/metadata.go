// Package metadata is ec2sec's access to the EC2 instance metadata service (IMDS): the
// aws-sdk-go-v2 IMDS client for token-authenticated reads (never falling back to IMDSv1),
// bounded reads of every answer, and the host identity the scan starts from.
package metadata

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"

	"github.com/ec2sec/ec2sec/internal/httplimit"
)

// Default endpoints, as the SDK and the EC2 documentation name them.
const (
	DefaultEndpoint     = "http://169.254.169.254"
	DefaultIPv6Endpoint = "http://[fd00:ec2::254]"
)

// Bounds on what one answer may cost us: IMDS answers are small, user data is at most 16 KB
// raw; anything bigger is garbage or hostile and is cut off. The HTTP client enforces them
// on the body itself (httplimit), since the SDK reads a whole body before handing it over.
const (
	maxAnswer   = httplimit.IMDSAnswer
	maxUserData = httplimit.IMDSUserData
)

// ErrNotFound is returned for a 404 answer: the item does not exist on this instance.
var ErrNotFound = errors.New("not found in IMDS")

// ErrDisabled is returned by every call when AWS_EC2_METADATA_DISABLED is true.
var ErrDisabled = errors.New("IMDS access disabled by AWS_EC2_METADATA_DISABLED")

// Client reads instance metadata. Its methods are safe for concurrent use.
type Client struct {
	sdk      *imds.Client
	endpoint string
	disabled bool
	timeout  time.Duration
}

// Options configure New. The zero value reads the standard environment.
type Options struct {
	// Endpoint overrides AWS_EC2_METADATA_SERVICE_ENDPOINT.
	Endpoint string
	// Timeout bounds one request (default 1s).
	Timeout time.Duration
	// Getenv reads the environment (default os.Getenv); tests inject their own.
	Getenv func(string) string
}

// New returns a client honouring AWS_EC2_METADATA_SERVICE_ENDPOINT,
// AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE and AWS_EC2_METADATA_DISABLED, as the SDK does.
func New(o Options) *Client {
	getenv := o.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	endpoint := o.Endpoint
	if endpoint == "" {
		endpoint = getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT")
	}
	if endpoint == "" {
		endpoint = DefaultEndpoint
		if strings.EqualFold(getenv("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"), "IPv6") {
			endpoint = DefaultIPv6Endpoint
		}
	}
	endpoint = strings.TrimRight(endpoint, "/")
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	c := &Client{
		endpoint: endpoint,
		disabled: strings.EqualFold(getenv("AWS_EC2_METADATA_DISABLED"), "true"),
		timeout:  timeout,
	}
	c.sdk = imds.New(imds.Options{
		Endpoint:          endpoint,
		ClientEnableState: imds.ClientEnabled,
		// The agent itself never uses IMDSv1: every read is token-authenticated.
		EnableFallback: aws.FalseTernary,
		// One retry: IMDS is local, and a scan must not wait on a host without it. The retry
		// comes within 50 ms: the imds client's default backoff of up to a second (which
		// DisableDefaultMaxBackoff turns off) made every scan off EC2 wait out its whole
		// 1 s timeout on a refused connection.
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = 2
			o.MaxBackoff = 50 * time.Millisecond
		}),
		DisableDefaultMaxBackoff: true,
		HTTPClient:               httpClient(),
	})
	return c
}

// httpClient is the SDK client's HTTP client with the SDK's timeouts for IMDS (a quick
// dial, a quick answer), dialling through Dialer: answered within a millisecond even while a
// scan keeps every core busy. Connections are not kept: one idle in a pool would be polled
// until closed, and a new one to a local IMDS costs microseconds. Headers and bodies are
// bounded (answerLimit) before the SDK reads them: a hostile IMDS costs at most a MiB.
func httpClient() *http.Client {
	return &http.Client{
		Transport: &httplimit.Transport{
			Base: &http.Transport{
				Proxy:                  http.ProxyFromEnvironment, // as the SDK's own client
				DialContext:            (&Dialer{Timeout: 250 * time.Millisecond}).DialContext,
				ResponseHeaderTimeout:  500 * time.Millisecond,
				DisableKeepAlives:      true,
				MaxResponseHeaderBytes: httplimit.IMDSHeaders,
			},
			Limit: answerLimit,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// answerLimit is the largest answer IMDS may give to req: a token, user data, or anything
// else the agent asks for.
func answerLimit(req *http.Request) int64 {
	p := strings.TrimRight(req.URL.Path, "/") // the endpoint may carry a path of its own
	switch {
	case strings.HasSuffix(p, "/latest/api/token"):
		return httplimit.IMDSToken
	case strings.HasSuffix(p, "/latest/user-data"):
		return maxUserData
	}
	return maxAnswer
}

// Endpoint returns the IMDS base URL, without a trailing slash.
func (c *Client) Endpoint() string { return c.endpoint }

// Disabled reports whether AWS_EC2_METADATA_DISABLED turned IMDS access off.
func (c *Client) Disabled() bool { return c.disabled }

// Timeout returns the per-request timeout.
func (c *Client) Timeout() time.Duration { return c.timeout }

// Get reads meta-data/<path>, e.g. Get(ctx, "iam/info").
func (c *Client) Get(ctx context.Context, path string) (string, error) {
	if c.disabled {
		return "", ErrDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.sdk.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", wrap("meta-data/"+path, err)
	}
	b, err := readBounded(out.Content, maxAnswer)
	if err != nil {
		return "", fmt.Errorf("IMDS meta-data/%s: %w", path, err)
	}
	return string(b), nil
}

// Dynamic reads dynamic/<path>, e.g. Dynamic(ctx, "instance-identity/document").
func (c *Client) Dynamic(ctx context.Context, path string) ([]byte, error) {
	if c.disabled {
		return nil, ErrDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.sdk.GetDynamicData(ctx, &imds.GetDynamicDataInput{Path: path})
	if err != nil {
		return nil, wrap("dynamic/"+path, err)
	}
	b, err := readBounded(out.Content, maxAnswer)
	if err != nil {
		return nil, fmt.Errorf("IMDS dynamic/%s: %w", path, err)
	}
	return b, nil
}

// UserData reads the instance's user data; ErrNotFound when it has none.
func (c *Client) UserData(ctx context.Context) ([]byte, error) {
	if c.disabled {
		return nil, ErrDisabled
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.sdk.GetUserData(ctx, &imds.GetUserDataInput{})
	if err != nil {
		return nil, wrap("user-data", err)
	}
	b, err := readBounded(out.Content, maxUserData)
	if err != nil {
		return nil, fmt.Errorf("IMDS user-data: %w", err)
	}
	return b, nil
}

// StatusCode returns the HTTP status of an IMDS answer that err came from, or 0.
func StatusCode(err error) int {
	var se interface{ HTTPStatusCode() int }
	if errors.As(err, &se) {
		return se.HTTPStatusCode()
	}
	// The SDK's token provider wraps a failed token request in an error without Unwrap, so
	// the status survives only in smithy's message ("http response error StatusCode: 403").
	if err != nil {
		if m := statusInMessage.FindStringSubmatch(err.Error()); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n
		}
	}
	return 0
}

var statusInMessage = regexp.MustCompile(`http response error StatusCode: (\d{3})`)

func wrap(what string, err error) error {
	if StatusCode(err) == http.StatusNotFound {
		return fmt.Errorf("IMDS %s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("IMDS %s: %w", what, err)
}

// readBounded reads at most limit bytes and fails on more, so a hostile or broken endpoint
// cannot make us buffer an unbounded answer.
func readBounded(rc io.ReadCloser, limit int64) ([]byte, error) {
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("answer larger than %d bytes", limit)
	}
	return b, nil
}

// Identity is who this host is, as IMDS tells it. Off EC2 every field but Hostname is empty
// and Reason says why.
type Identity struct {
	InstanceID string
	AccountID  string
	Region     string
	Partition  string // aws, aws-cn, aws-us-gov, ...
	Domain     string // amazonaws.com, amazonaws.com.cn, ...
	AMIID      string
	Hostname   string
	// Reachable reports that IMDS answered over HTTP at all (even with an error status).
	Reachable bool
	// Reason says why the identity is missing or partial; empty when complete.
	Reason string
}

// OnEC2 reports whether IMDS told us an instance id.
func (id Identity) OnEC2() bool { return id.InstanceID != "" }

// InstanceARN returns arn:<partition>:ec2:<region>:<account>:instance/<id>, or "" off EC2.
func (id Identity) InstanceARN() string {
	if !id.OnEC2() || id.Region == "" || id.AccountID == "" {
		return ""
	}
	return fmt.Sprintf("arn:%s:ec2:%s:%s:instance/%s", id.Partition, id.Region, id.AccountID, id.InstanceID)
}

// Identity asks IMDS who this host is, within about a second in all: the first request
// decides whether IMDS is there at all, so a host off EC2 pays one short timeout.
func (c *Client) Identity(ctx context.Context) Identity {
	var id Identity
	if c.disabled {
		id.Reason = ErrDisabled.Error()
		return id
	}
	first, cancel := context.WithTimeout(ctx, c.timeout)
	doc, err := c.Dynamic(first, "instance-identity/document")
	cancel()
	if err != nil {
		id.Reachable = StatusCode(err) != 0
		if id.Reachable {
			id.Reason = fmt.Sprintf("IMDS at %s answered but gave no identity: %v", c.endpoint, err)
		} else {
			id.Reason = fmt.Sprintf("not on EC2: IMDS at %s did not answer (%v)", c.endpoint, err)
		}
		return id
	}
	id.Reachable = true
	d, err := parseIdentityDocument(doc)
	if err != nil {
		id.Reason = fmt.Sprintf("IMDS instance identity document is not JSON: %v", err)
		return id
	}
	id.InstanceID, id.AccountID, id.Region, id.AMIID = d.InstanceID, d.AccountID, d.Region, d.ImageID
	// The rest at once: the scan waits for the identity before most probes start.
	items := []struct {
		path string
		dst  *string
		err  error
	}{{"hostname", &id.Hostname, nil}, {"services/domain", &id.Domain, nil}, {"services/partition", &id.Partition, nil}}
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() {
			v, err := c.Get(ctx, items[i].path)
			if items[i].err = err; err == nil {
				*items[i].dst = strings.TrimSpace(v)
			}
		})
	}
	wg.Wait()
	var missing []string
	for _, it := range items {
		if it.err != nil {
			missing = append(missing, it.path)
		}
	}
	if id.Partition == "" {
		id.Partition = PartitionOf(id.Region)
	}
	if id.Domain == "" {
		id.Domain = DomainOf(id.Partition)
	}
	if len(missing) > 0 {
		id.Reason = "IMDS did not answer " + strings.Join(missing, ", ") + "; derived from the region where possible"
	}
	return id
}

// identityDocument is what the agent takes from the instance identity document.
type identityDocument struct {
	InstanceID string `json:"instanceId"`
	AccountID  string `json:"accountId"`
	Region     string `json:"region"`
	ImageID    string `json:"imageId"`
}

// parseIdentityDocument parses the instance identity document (a separate function so it
// can be fuzzed without an HTTP round trip).
func parseIdentityDocument(doc []byte) (identityDocument, error) {
	var d identityDocument
	err := json.Unmarshal(doc, &d)
	return d, err
}

// PartitionOf returns the AWS partition a region belongs to.
func PartitionOf(region string) string {
	switch {
	case strings.HasPrefix(region, "cn-"):
		return "aws-cn"
	case strings.HasPrefix(region, "us-gov-"):
		return "aws-us-gov"
	case strings.HasPrefix(region, "us-isob-"):
		return "aws-iso-b"
	case strings.HasPrefix(region, "us-iso-"):
		return "aws-iso"
	case strings.HasPrefix(region, "eu-isoe-"):
		return "aws-iso-e"
	case strings.HasPrefix(region, "us-isof-"):
		return "aws-iso-f"
	case strings.HasPrefix(region, "eusc-"):
		return "aws-eusc"
	default:
		return "aws"
	}
}

// partitionDomains are the DNS suffixes of the AWS partitions' service endpoints, as the
// SDK's partitions.json (aws-sdk-go-v2 internal/endpoints/awsrulesfn) lists them: aws and
// aws-us-gov share amazonaws.com.
var partitionDomains = map[string]string{
	"aws":        "amazonaws.com",
	"aws-us-gov": "amazonaws.com",
	"aws-cn":     "amazonaws.com.cn",
	"aws-eusc":   "amazonaws.eu",
	"aws-iso":    "c2s.ic.gov",
	"aws-iso-b":  "sc2s.sgov.gov",
	"aws-iso-e":  "cloud.adc-e.uk",
	"aws-iso-f":  "csp.hci.ic.gov",
}

// DomainOf returns the DNS suffix of a partition's service endpoints (amazonaws.com for a
// partition it does not know).
func DomainOf(partition string) string {
	if d, ok := partitionDomains[partition]; ok {
		return d
	}
	return "amazonaws.com"
}

// KnownDomain reports whether domain (as IMDS services/domain says it) is the DNS suffix of an
// AWS partition. A name made of anything else (ssm.<region>.attacker.example) would send the
// agent's DNS lookups, and its connections, wherever a hostile IMDS wants.
func KnownDomain(domain string) bool {
	for _, d := range partitionDomains {
		if domain == d {
			return true
		}
	}
	return false
}

// regionName is the shape of every AWS region name: us-east-1, us-gov-west-1, cn-north-1,
// us-isob-east-1, eu-isoe-west-1, eusc-de-east-1.
var regionName = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]{1,10}){1,3}-[0-9]{1,2}$`)

// ValidRegion reports whether region has the shape of an AWS region name: one DNS label, no
// dots, nothing a hostile identity document could use to name another host.
func ValidRegion(region string) bool { return regionName.MatchString(region) }
