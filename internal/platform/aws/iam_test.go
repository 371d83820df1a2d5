package aws

import (
	"encoding/json"
	"sort"
	"strings"
	"testing"
)

// rawPolicy is the JSON of an IAM policy, parsed without this package's
// types, as IAM would read it.
type rawPolicy struct {
	Version   string
	Statement []struct {
		Sid       string
		Effect    string
		Action    []string
		Resource  []string
		Condition map[string]map[string]string
	}
}

// readOnly are the actions that change nothing.
func readOnly(action string) bool {
	_, name, _ := strings.Cut(action, ":")
	return strings.HasPrefix(name, "Describe") || strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
}

func TestAgentPolicy(t *testing.T) {
	for name, in := range map[string]PolicyInput{
		"account and region": {Cluster: "prod", Region: "eu-west-1", AccountID: "123456789012"},
		"any account":        {Cluster: "prod"},
		"customer key":       {Cluster: "prod", Region: "eu-west-1", AccountID: "123456789012", KMSKeyARN: "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"},
	} {
		doc, err := RenderAgentPolicy(in)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var p rawPolicy
		if err := json.Unmarshal([]byte(doc), &p); err != nil {
			t.Fatalf("%s: not JSON: %v\n%s", name, err, doc)
		}
		if p.Version != "2012-10-17" {
			t.Errorf("%s: version %q", name, p.Version)
		}
		var actions []string
		for _, st := range p.Statement {
			if st.Effect != "Allow" || len(st.Action) == 0 || len(st.Resource) == 0 {
				t.Errorf("%s: statement %s: %+v", name, st.Sid, st)
			}
			for _, a := range st.Action {
				actions = append(actions, a)
				if strings.Contains(a, "*") {
					t.Errorf("%s: wildcard action %q", name, a)
				}
				switch {
				case strings.HasPrefix(a, "kms:"):
					via := st.Condition["StringEquals"]["kms:ViaService"] + st.Condition["StringLike"]["kms:ViaService"]
					if !strings.HasPrefix(via, "ssm.") || !strings.HasSuffix(via, ".amazonaws.com") {
						t.Errorf("%s: %s is not limited to SSM: %v", name, a, st.Condition)
					}
				case strings.HasPrefix(a, "ssm:"):
					for _, r := range st.Resource {
						if !strings.Contains(r, ":parameter/autarky/prod") {
							t.Errorf("%s: %s on %s, outside the cluster's parameter path", name, a, r)
						}
					}
				case !readOnly(a):
					// Mutating calls: never on every resource, and only on
					// the cluster's tagged groups.
					for _, r := range st.Resource {
						if r == "*" {
							t.Errorf("%s: mutating %s on every resource", name, a)
						}
					}
					if st.Condition["StringEquals"]["aws:ResourceTag/autarky:cluster"] != "prod" {
						t.Errorf("%s: mutating %s not limited to the cluster's tag: %v", name, a, st.Condition)
					}
				}
			}
			if in.Region != "" {
				for _, r := range st.Resource {
					if r != "*" && !strings.Contains(r, ":"+in.Region+":") {
						t.Errorf("%s: %s resource %s outside the region", name, st.Sid, r)
					}
				}
			}
		}
		sort.Strings(actions)
		want := []string{
			"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes", "autoscaling:DescribeScalingActivities",
			"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
			"ec2:DescribeInstances", "kms:Decrypt",
			"ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:PutParameter",
		}
		if in.KMSKeyARN != "" {
			want = append(want, "kms:Encrypt")
			sort.Strings(want)
		}
		if strings.Join(actions, " ") != strings.Join(want, " ") {
			t.Errorf("%s: actions\n%v\nwant\n%v", name, actions, want)
		}

		// The SSM writes are exactly these parameters: the journal and its
		// parts, its set-aside copies, the pool descriptors, the tokens,
		// their rotation record and the init lock; the only deletes are of the journal, after a
		// set-aside, and of its parts.
		arn := func(name string) string { return in.parameterARN("/autarky/prod" + name) }
		wantWrites := map[string][]string{
			"ssm:PutParameter": {arn("/generation"), arn("/journal"), arn("/journal-parts/*"), arn("/journal-set-aside-*"), arn("/pools/*"), arn("/swarm/init-lock"),
				arn("/tokens/manager"), arn("/tokens/rotation"), arn("/tokens/worker")},
			"ssm:DeleteParameter":  {arn("/journal"), arn("/journal-parts/*")},
			"ssm:DeleteParameters": {arn("/journal"), arn("/journal-parts/*")},
		}
		for action, want := range wantWrites {
			var got []string
			for _, st := range p.Statement {
				for _, a := range st.Action {
					if a == action {
						got = append(got, st.Resource...)
					}
				}
			}
			sort.Strings(got)
			sort.Strings(want)
			if strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("%s: %s on\n%v\nwant\n%v", name, action, got, want)
			}
		}
	}
}

// TestSetAsidePatternMatchesSetAsideNames checks the IAM pattern of the
// set-aside copies against the names SetAsideJournal makes, and that it
// matches neither the journal nor anything outside the cluster.
func TestSetAsidePatternMatchesSetAsideNames(t *testing.T) {
	pattern := JournalSetAsideParameterPattern("prod")
	prefix, ok := strings.CutSuffix(pattern, "*")
	if !ok || strings.ContainsAny(prefix, "*?") {
		t.Fatalf("pattern %q: want one trailing wildcard", pattern)
	}
	for _, name := range []string{JournalSetAsideParameter("prod", 1764239400), JournalSetAsideParameter("prod", 1764239400) + "-2",
		JournalSetAsidePart(JournalSetAsideParameter("prod", 1764239400), 3)} {
		if !strings.HasPrefix(name, prefix) {
			t.Errorf("%s is not matched by %s", name, pattern)
		}
	}
	for _, name := range []string{JournalParameter("prod"), JournalSetAsideParameter("prod2", 1), "/autarky/prod/tokens/manager"} {
		if strings.HasPrefix(name, prefix) {
			t.Errorf("%s is matched by %s", name, pattern)
		}
	}
}

func TestWorkerPolicy(t *testing.T) {
	d, err := WorkerPolicy(PolicyInput{Cluster: "prod", Region: "eu-west-1", AccountID: "123456789012"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := d.JSON()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(doc, "tokens/manager") || strings.Contains(doc, "PutParameter") || strings.Contains(doc, "autoscaling:") {
		t.Errorf("a worker may read only its own token:\n%s", doc)
	}
	if !strings.Contains(doc, "arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/prod/tokens/worker") {
		t.Errorf("worker token missing:\n%s", doc)
	}
}

func TestPolicyRefuses(t *testing.T) {
	for _, in := range []PolicyInput{
		{Cluster: "Prod"},
		{Cluster: "prod", AccountID: "12"},
		{Cluster: "prod", Region: "*"},
		{Cluster: "prod", Partition: "aws\"x"},
		{Cluster: "prod", KMSKeyARN: "*"},
	} {
		if _, err := RenderAgentPolicy(in); err == nil {
			t.Errorf("%+v rendered", in)
		}
	}
}
