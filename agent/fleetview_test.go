package agent

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ec2sec/ec2sec/agent/asff"
	"github.com/ec2sec/ec2sec/agent/state"
	"github.com/ec2sec/ec2sec/internal/logsinsights"
	"github.com/ec2sec/ec2sec/probes"
	"gopkg.in/yaml.v3"
)

// The fleet view of the central stack (saved queries, Contributor Insights rule, dashboard,
// Security Hub insights) held to what the agent really emits: every metric a widget shows is
// one the agent publishes, every field a query or rule reads is in the agent's events, every
// query passes the Logs Insights checker, every check it names is in the catalog.

const (
	stackPath     = "../packaging/cloudformation/ec2sec-central.yaml"
	dashboardPath = "../packaging/cloudformation/dashboard.json"
)

// pendingChecks may be named before they are in the catalog: imds-v1-callers comes with the
// imdswatch probe (issue 18).
var pendingChecks = []string{"imds-v1-callers"}

func knownCheck(t *testing.T, id string) bool {
	if _, ok := probes.Lookup(id); ok {
		return true
	}
	if slices.Contains(pendingChecks, id) {
		t.Logf("check %s is not in the catalog yet (pending)", id)
		return true
	}
	return false
}

type stackDoc struct {
	Resources map[string]struct {
		Type       string         `yaml:"Type"`
		Properties map[string]any `yaml:"Properties"`
	} `yaml:"Resources"`
}

func loadStack(t *testing.T) stackDoc {
	t.Helper()
	b, err := os.ReadFile(stackPath)
	if err != nil {
		t.Fatal(err)
	}
	var s stackDoc
	if err := yaml.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func (s stackDoc) ofType(typ string) map[string]map[string]any {
	out := map[string]map[string]any{}
	for name, r := range s.Resources {
		if r.Type == typ {
			out[name] = r.Properties
		}
	}
	return out
}

// sub returns the string of a {"Fn::Sub": "..."} (or a plain string).
func sub(t *testing.T, v any) string {
	t.Helper()
	switch v := v.(type) {
	case string:
		return v
	case map[string]any:
		if s, ok := v["Fn::Sub"].(string); ok {
			return s
		}
	}
	t.Fatalf("not a string or Fn::Sub of a string: %v", v)
	return ""
}

// eventFields are the fields (dotted paths, as Logs Insights names them) of every kind of
// event the agent writes: a result of every status, the run summary with everything set,
// a failed check's metrics.
func eventFields(t *testing.T) map[string]bool {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	rs := everyResult()
	rs[0] = rs[0].With("path", "/etc/x").With("process", map[string]any{"pid": 1, "comm": "curl"})
	rs[0].Remediation = probes.Remediation{Text: "fix", URL: "https://example.com"}
	rs[0].Compliance = []string{"CIS 1.1"}
	rep := synthetic(emfHosts[0], at, []string{"imds"}, rs...)
	rep.Host.AMIID, rep.Host.Partition = "ami-1", "aws"
	rep.Probes[0].Error = "e"
	var docs []string
	for _, lc := range []state.Lifecycle{state.New, state.Changed, state.Resolved} {
		docs = append(docs, resultEvent(rep, state.Change{Result: rep.Results[0], Lifecycle: lc}))
	}
	docs = append(docs, metricEvents(rep, SpoolStats{DroppedEvents: 1, HubSkipped: 1}, 1, true)...)
	fields := map[string]bool{}
	var flat func(prefix string, v any)
	flat = func(prefix string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				flat(strings.TrimPrefix(prefix+"."+k, "."), x)
			}
		case []any:
			for i, x := range v {
				flat(fmt.Sprintf("%s.%d", prefix, i), x)
			}
		}
		if prefix != "" {
			fields[prefix] = true
		}
	}
	for _, d := range docs {
		var m map[string]any
		if err := json.Unmarshal([]byte(d), &m); err != nil {
			t.Fatal(err)
		}
		flat("", m)
	}
	return fields
}

// emittedShapes are the metrics the agent can publish, as namespace/name[dimension keys].
func emittedShapes(t *testing.T) map[string]bool {
	out := map[string]bool{}
	rep := synthetic(emfHosts[0], time.Now(), []string{"imds"}, everyResult()...)
	for _, doc := range metricEvents(rep, SpoolStats{DroppedEvents: 1, HubSkipped: 1}, 1, true) {
		ks, _ := emfMetrics(t, doc)
		for _, k := range ks {
			out[k.shape()] = true
		}
	}
	return out
}

var searchRe = regexp.MustCompile(`^SEARCH\('\{([^}]*)\} MetricName="([^"]+)"', '(Sum|SampleCount|Average|Maximum|Minimum|p\d+)', \d+\)$`)

// TestDashboardInStack: the stack's dashboard body is dashboard.json, and every widget shows
// what the agent emits.
func TestDashboardInStack(t *testing.T) {
	s := loadStack(t)
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var file, inStack map[string]any
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("dashboard.json: %v", err)
	}
	ds := s.ofType("AWS::CloudWatch::Dashboard")
	if len(ds) != 1 {
		t.Fatalf("%d dashboards in the stack, want 1", len(ds))
	}
	for _, d := range ds {
		if err := json.Unmarshal([]byte(sub(t, d["DashboardBody"])), &inStack); err != nil {
			t.Fatalf("the stack's DashboardBody is not JSON: %v", err)
		}
	}
	if !reflect.DeepEqual(file, inStack) {
		t.Errorf("the stack's DashboardBody differs from dashboard.json: copy the file into the template")
	}
	rules := s.ofType("AWS::CloudWatch::InsightRule")
	var ruleNames []string
	for _, r := range rules {
		ruleNames = append(ruleNames, sub(t, r["RuleName"]))
	}

	shapes := emittedShapes(t)
	fields := eventFields(t)
	var widgets struct {
		Widgets []struct {
			Type       string `json:"type"`
			Properties struct {
				Title       string  `json:"title"`
				Metrics     [][]any `json:"metrics"`
				Query       string  `json:"query"`
				InsightRule *struct {
					RuleName string `json:"ruleName"`
				} `json:"insightRule"`
				Region string `json:"region"`
			} `json:"properties"`
		} `json:"widgets"`
	}
	if err := json.Unmarshal(raw, &widgets); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, w := range widgets.Widgets {
		p := w.Properties
		what := w.Type + " " + p.Title
		if w.Type != "text" && p.Region != "${AWS::Region}" {
			t.Errorf("%s: region %q, want the stack's", what, p.Region)
		}
		switch {
		case w.Type == "text":
		case w.Type == "log":
			q, ok := strings.CutPrefix(p.Query, "SOURCE '${LogGroupName}' | ")
			if !ok {
				t.Errorf("%s: query does not read the stack's log group first: %s", what, p.Query)
			}
			if err := logsinsights.Check(p.Query, func(f string) bool { return fields[f] }); err != nil {
				t.Errorf("%s: %v", what, err)
			}
			checkChecks(t, what, q)
			seen["log"] = true
		case p.InsightRule != nil:
			if !slices.Contains(ruleNames, p.InsightRule.RuleName) {
				t.Errorf("%s: rule %q is not one the stack creates (%v)", what, p.InsightRule.RuleName, ruleNames)
			}
			seen["insight"] = true
		case w.Type == "metric":
			if len(p.Metrics) == 0 {
				t.Errorf("%s: no metrics", what)
			}
			var prev []any
			for _, m := range p.Metrics {
				if e, ok := m[0].(map[string]any); ok {
					expr, _ := e["expression"].(string)
					sm := searchRe.FindStringSubmatch(expr)
					if sm == nil {
						t.Errorf("%s: expression %q is not a SEARCH this test reads", what, expr)
						continue
					}
					keys := strings.Split(sm[1], ",")
					shape := keys[0] + "/" + sm[2] + "[" + strings.Join(keys[1:], ",") + "]"
					if !shapes[shape] {
						t.Errorf("%s: SEARCH for %s, which the agent never publishes", what, shape)
					}
					continue
				}
				// ["ns", "name", "dim", "value", ..., {options}], "." repeating the row above.
				var row []string
				for i, x := range m {
					s, ok := x.(string)
					if !ok {
						break
					}
					if s == "." && i < len(prev) {
						s, _ = prev[i].(string)
					}
					row = append(row, s)
				}
				prev = m
				for i, x := range row {
					if i < len(prev) {
						prev[i] = x
					}
				}
				if len(row) < 2 || len(row)%2 != 0 {
					t.Errorf("%s: metric row %v", what, m)
					continue
				}
				var dims []string
				for i := 2; i < len(row); i += 2 {
					dims = append(dims, row[i])
					if row[i] == DimCheck && !knownCheck(t, row[i+1]) {
						t.Errorf("%s: check %q is not in the catalog", what, row[i+1])
					}
				}
				shape := row[0] + "/" + row[1] + "[" + strings.Join(dims, ",") + "]"
				if !shapes[shape] {
					t.Errorf("%s: metric %s, which the agent never publishes", what, shape)
				}
			}
			seen["metric"] = true
		default:
			t.Errorf("%s: widget type this test does not know", what)
		}
	}
	for _, k := range []string{"metric", "log", "insight"} {
		if !seen[k] {
			t.Errorf("no %s widget", k)
		}
	}
	for _, title := range []string{"severity", "by check", "Agents reporting", "Delivery", "IMDSv1 callers", "Contributor Insights"} {
		if !strings.Contains(string(raw), title) {
			t.Errorf("no widget about %q", title)
		}
	}
}

var checkRef = regexp.MustCompile(`result\.check = \\?"([a-z0-9-]+)\\?"`)

func checkChecks(t *testing.T, what, q string) {
	for _, m := range checkRef.FindAllStringSubmatch(q, -1) {
		if !knownCheck(t, m[1]) {
			t.Errorf("%s: check %q is not in the catalog", what, m[1])
		}
	}
}

// TestSavedQueries: the saved queries read the stack's log group, pass the Logs Insights
// checker over the agent's real event fields, and the secrets query selects exactly the
// checks the ASFF types call sensitive data.
func TestSavedQueries(t *testing.T) {
	s := loadStack(t)
	fields := eventFields(t)
	qs := s.ofType("AWS::Logs::QueryDefinition")
	names := map[string]string{}
	for res, p := range qs {
		name, _ := p["Name"].(string)
		q, _ := p["QueryString"].(string)
		names[name] = q
		if !strings.HasPrefix(name, "ec2sec/") {
			t.Errorf("%s: name %q not under ec2sec/ (the console groups saved queries by folder)", res, name)
		}
		if b, _ := json.Marshal(p["LogGroupNames"]); string(b) != `[{"Ref":"FindingsLogGroup"}]` {
			t.Errorf("%s: LogGroupNames %s, want the stack's log group", res, b)
		}
		if err := logsinsights.Check(q, func(f string) bool { return fields[f] }); err != nil {
			t.Errorf("%s: %v\n  %s", res, err, q)
		}
		checkChecks(t, res, q)
	}
	for _, want := range []string{"open-findings-by-instance", "open-findings-by-check", "secrets-exposed", "hosts-not-reporting", "delivery-problems"} {
		if names["ec2sec/"+want] == "" {
			t.Errorf("no saved query ec2sec/%s", want)
		}
	}
	// The secrets query's regex against the catalog: the same checks as ASFF's sensitive
	// data types, no more, no less.
	re := regexp.MustCompile(`like /([^/]+)/`).FindStringSubmatch(names["ec2sec/secrets-exposed"])
	if re == nil {
		t.Fatalf("secrets query has no check regex")
	}
	secret := regexp.MustCompile(re[1])
	for _, c := range probes.Catalog() {
		sensitive := slices.ContainsFunc(asff.Types(c.ID, nil), func(s string) bool { return strings.HasPrefix(s, "Sensitive Data Identifications") })
		if secret.MatchString(c.ID) != sensitive {
			t.Errorf("check %s: secrets query selects it %v, ASFF sensitive data %v", c.ID, secret.MatchString(c.ID), sensitive)
		}
	}
}

// TestContributorInsightsRule: the rule reads the run summary's fields as the agent writes
// them: the host key is a string, the value a number, the filter a type the agent writes.
func TestContributorInsightsRule(t *testing.T) {
	s := loadStack(t)
	rules := s.ofType("AWS::CloudWatch::InsightRule")
	if len(rules) != 1 {
		t.Fatalf("%d rules, want 1", len(rules))
	}
	var summary map[string]any
	rep := synthetic(emfHosts[0], time.Now(), []string{"imds"}, everyResult()...)
	evs := metricEvents(rep, SpoolStats{}, 0, true)
	json.Unmarshal([]byte(evs[len(evs)-1]), &summary)
	get := func(path string) any {
		var v any = summary
		for _, k := range strings.Split(strings.TrimPrefix(path, "$."), ".") {
			m, _ := v.(map[string]any)
			v = m[k]
		}
		return v
	}
	for name, r := range rules {
		if r["RuleState"] != "ENABLED" {
			t.Errorf("%s: not enabled", name)
		}
		body := strings.ReplaceAll(sub(t, r["RuleBody"]), "${LogGroupName}", "/ec2sec/findings")
		var rb struct {
			Schema struct {
				Name    string
				Version int
			}
			LogGroupNames []string
			LogFormat     string
			Contribution  struct {
				Keys    []string
				ValueOf string
				Filters []map[string]any
			}
			AggregateOn string
		}
		dec := json.NewDecoder(strings.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rb); err != nil {
			t.Fatalf("%s: rule body: %v\n%s", name, err, body)
		}
		if rb.Schema.Name != "CloudWatchLogRule" || rb.Schema.Version != 1 || rb.LogFormat != "JSON" || rb.AggregateOn != "Sum" || !slices.Equal(rb.LogGroupNames, []string{"/ec2sec/findings"}) {
			t.Errorf("%s: rule body %+v", name, rb)
		}
		for _, k := range rb.Contribution.Keys {
			if v, ok := get(k).(string); !ok || v != emfHosts[0].InstanceID {
				t.Errorf("%s: key %s is %v in the summary, want the instance id", name, k, get(k))
			}
		}
		if v, ok := get(rb.Contribution.ValueOf).(float64); !ok || v == 0 {
			t.Errorf("%s: ValueOf %s is %v in the summary, want the FAILED count", name, rb.Contribution.ValueOf, get(rb.Contribution.ValueOf))
		}
		for _, f := range rb.Contribution.Filters {
			m, _ := f["Match"].(string)
			if get(m) == nil {
				t.Errorf("%s: filter on %s, which the summary lacks", name, m)
			}
			if in, ok := f["In"].([]any); ok && !slices.Contains(in, get(m)) {
				t.Errorf("%s: filter %v does not match the summary's %v", name, f, get(m))
			}
		}
	}
}

// TestSecurityHubInsights: the insights select ec2sec's findings by the GeneratorId the
// agent writes (ec2sec/<check>), name only catalog checks, and group by an attribute.
func TestSecurityHubInsights(t *testing.T) {
	s := loadStack(t)
	ins := s.ofType("AWS::SecurityHub::Insight")
	var names []string
	for res, p := range ins {
		name, _ := p["Name"].(string)
		names = append(names, name)
		if !strings.HasPrefix(name, "ec2sec") {
			t.Errorf("%s: name %q", res, name)
		}
		if g, _ := p["GroupByAttribute"].(string); !slices.Contains([]string{"GeneratorId", "ResourceId", "AwsAccountId", "SeverityLabel", "Type"}, g) {
			t.Errorf("%s: group by %q", res, g)
		}
		f, _ := p["Filters"].(map[string]any)
		gens, _ := f["GeneratorId"].([]any)
		if len(gens) == 0 {
			t.Errorf("%s: does not select by GeneratorId, so not only ec2sec's findings", res)
		}
		for _, g := range gens {
			g := g.(map[string]any)
			v, _ := g["Value"].(string)
			switch g["Comparison"] {
			case "PREFIX":
				if v != "ec2sec/" {
					t.Errorf("%s: GeneratorId prefix %q", res, v)
				}
			case "EQUALS":
				c, ok := strings.CutPrefix(v, "ec2sec/")
				if !ok || !knownCheck(t, c) {
					t.Errorf("%s: GeneratorId %q is no catalog check's", res, v)
				}
			default:
				t.Errorf("%s: GeneratorId comparison %v", res, g["Comparison"])
			}
		}
		if ty, ok := f["Type"].([]any); ok {
			v := ty[0].(map[string]any)["Value"].(string)
			hit := false
			for _, c := range probes.Catalog() {
				hit = hit || slices.ContainsFunc(asff.Types(c.ID, nil), func(s string) bool { return strings.HasPrefix(s, v) })
			}
			if !hit {
				t.Errorf("%s: type %q is no ec2sec finding's", res, v)
			}
		}
	}
	// The generator id the insights select is the one the agent writes.
	f := asff.FromResult(probes.NewResult("imds-v1-enabled", probes.Failed, "", "x"), asff.Host{AccountID: "1", Region: "r", Partition: "aws"}, asff.Times{}, asff.Options{})
	if f.GeneratorID != "ec2sec/imds-v1-enabled" {
		t.Errorf("the agent's GeneratorId is %q; the insights select ec2sec/<check>", f.GeneratorID)
	}
	if len(ins) < 4 {
		t.Errorf("%d insights (%v), want by check, by instance, secrets, IMDSv1", len(ins), names)
	}
}
