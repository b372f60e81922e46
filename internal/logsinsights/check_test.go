package logsinsights

import (
	"strings"
	"testing"
)

var fields = map[string]bool{"type": true, "host.instance_id": true, "result.check": true, "result.status": true, "result.id": true, "lifecycle": true, "Failed": true, "message": true}

func known(f string) bool { return fields[f] }

func TestCheckAccepts(t *testing.T) {
	for _, q := range []string{
		`fields @timestamp, host.instance_id | filter type = "result" | sort @timestamp desc | limit 20`,
		`SOURCE '/ec2sec/findings' | filter type = "run-summary" | stats count(*) as scans by bin(1h)`,
		`filter type = "result" and result.status in ["FAILED", "WARNING"] | stats latest(lifecycle) as lc, latest(result.status) as st by result.id, host.instance_id | filter lc != "resolved" and st = "FAILED" | stats count(*) as open by host.instance_id | sort open desc`,
		`filter ispresent(Failed) and Failed > 0 | stats sum(Failed) as f by host.instance_id | sort f desc | limit 10`,
		`parse message "sent * of *" as sent, total | display sent, total`,
		`parse @message /(?<code>\d+) (?<what>\w+)/ | filter code like /5\d\d/ | stats count(*) by code, what`,
		`filter result.check like "secret" | dedup result.id | fields result.id`,
		`stats max(@timestamp) as last by host.instance_id | filter last < 7200000 | sort last asc`,
		`filter type = "x" and (Failed > 0 or not ispresent(message))`,
	} {
		if err := Check(q, known); err != nil {
			t.Errorf("%s\n  refused: %v", q, err)
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	for q, why := range map[string]string{
		``:                        "empty",
		`fields nosuch`:           "unknown field",
		`filter type = "result`:   "unterminated",
		`filter (type = "result"`: "unbalanced",
		`stats count(*) by host.instance_id | sort result.check`: "not an output",
		`stats frobnicate(Failed)`:                               "aggregate",
		`filter frob(type)`:                                      "unknown function",
		`select * from logs`:                                     "unknown command",
		`fields type | limit many`:                               "limit",
		`fields type | limit 0`:                                  "limit",
		`sort type sideways`:                                     "sort order",
		`parse message "a * b *" as one`:                         "glob",
		`fields type |`:                                          "empty",
		`filter type = "x" | SOURCE 'g'`:                         "SOURCE",
		`stats sum(Failed) by`:                                   "by needs",
		`fields type # comment`:                                  "unexpected",
	} {
		err := Check(q, known)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%q: got %v, want an error about %q", q, err, why)
		}
	}
}
