package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	dsschema "github.com/hashicorp/terraform-plugin-framework/datasource/schema"
	fwprovider "github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-testing/helper/resource"
	"github.com/hashicorp/terraform-plugin-testing/knownvalue"
	"github.com/hashicorp/terraform-plugin-testing/statecheck"
	"github.com/hashicorp/terraform-plugin-testing/terraform"
	"github.com/hashicorp/terraform-plugin-testing/tfjsonpath"
)

// agentPolicyProvider is the provider with autarky_aws_agent_policy
// registered, whether or not provider.go registers it yet.
type agentPolicyProvider struct{ *autarkyProvider }

func (p agentPolicyProvider) DataSources(ctx context.Context) []func() datasource.DataSource {
	list := p.autarkyProvider.DataSources(ctx)
	for _, f := range list {
		var resp datasource.MetadataResponse
		f().Metadata(ctx, datasource.MetadataRequest{ProviderTypeName: "autarky"}, &resp)
		if resp.TypeName == "autarky_aws_agent_policy" {
			return list
		}
	}
	return append(list, newAgentPolicyDataSource)
}

func agentPolicyProviderFactories(t *testing.T) map[string]func() (tfprotov6.ProviderServer, error) {
	t.Helper()
	p, ok := New("test")().(*autarkyProvider)
	if !ok {
		t.Fatalf("New returns %T, not *autarkyProvider", New("test")())
	}
	var _ fwprovider.Provider = agentPolicyProvider{p}
	return map[string]func() (tfprotov6.ProviderServer, error){
		"autarky": providerserver.NewProtocol6WithError(agentPolicyProvider{p}),
	}
}

// agentPolicyPreCheck needs only the Terraform CLI: the data source is a
// pure render, with no platform behind it.
func agentPolicyPreCheck(t *testing.T) {
	t.Helper()
	tf := os.Getenv("TF_ACC_TERRAFORM_PATH")
	if _, err := os.Stat(tf); err != nil {
		t.Fatalf("the Terraform CLI is not at TF_ACC_TERRAFORM_PATH=%s: run `make tools`", tf)
	}
}

// agentPolicyStrings is an IAM string-or-list value.
type agentPolicyStrings []string

func (s *agentPolicyStrings) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("neither a string nor a list of strings: %s", b)
	}
	*s = many
	return nil
}

// agentPolicyIAMDoc is an IAM policy document, parsed as IAM reads it
// rather than with package aws's types.
type agentPolicyIAMDoc struct {
	Version   string
	Statement []struct {
		Sid         string
		Effect      string
		Principal   json.RawMessage
		Action      agentPolicyStrings
		NotAction   json.RawMessage
		Resource    agentPolicyStrings
		NotResource json.RawMessage
		Condition   map[string]map[string]agentPolicyStrings
	}
}

// agentPolicyWant is what a rendered document must be scoped to.
type agentPolicyWant struct {
	cluster, partition, region, account, kmsKey string
}

func (w agentPolicyWant) paramARN(name string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:parameter%s", w.partition, agentPolicyOrAny(w.region), agentPolicyOrAny(w.account), name)
}

func agentPolicyOrAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

// agentPolicyReadOnly are the actions that change nothing.
func agentPolicyReadOnly(action string) bool {
	_, name, _ := strings.Cut(action, ":")
	return strings.HasPrefix(name, "Describe") || strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
}

// agentPolicyCondition is the value of a condition key under an operator,
// or "" when absent or not a single value.
func agentPolicyCondition(c map[string]map[string]agentPolicyStrings, op, key string) string {
	if v := c[op][key]; len(v) == 1 {
		return v[0]
	}
	return ""
}

// agentPolicyCheckDoc parses doc as an IAM policy and checks it is least
// privilege for w: no wildcard actions, every mutating action on named,
// cluster-scoped resources, SSM only under the cluster's path, KMS only
// through SSM, every ARN in w's partition, region and account; and the
// actions are exactly want.
func agentPolicyCheckDoc(doc string, w agentPolicyWant, want []string) error {
	var p agentPolicyIAMDoc
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf("not an IAM policy document: %v\n%s", err, doc)
	}
	if p.Version != "2012-10-17" {
		return fmt.Errorf("version %q, want 2012-10-17", p.Version)
	}
	if len(p.Statement) == 0 {
		return fmt.Errorf("no statements:\n%s", doc)
	}
	clusterPath := "/autarky/" + w.cluster
	underCluster := func(r string, exactToo bool) bool {
		return (exactToo && r == w.paramARN(clusterPath)) || strings.HasPrefix(r, w.paramARN(clusterPath+"/"))
	}
	viaSSM := func(c map[string]map[string]agentPolicyStrings) bool {
		if w.region != "" {
			return agentPolicyCondition(c, "StringEquals", "kms:ViaService") == "ssm."+w.region+".amazonaws.com"
		}
		return agentPolicyCondition(c, "StringLike", "kms:ViaService") == "ssm.*.amazonaws.com"
	}
	var actions []string
	for _, st := range p.Statement {
		where := fmt.Sprintf("statement %q", st.Sid)
		if st.Effect != "Allow" || len(st.Action) == 0 || len(st.Resource) == 0 {
			return fmt.Errorf("%s: effect %q, %d actions, %d resources", where, st.Effect, len(st.Action), len(st.Resource))
		}
		if st.Principal != nil || st.NotAction != nil || st.NotResource != nil {
			return fmt.Errorf("%s: Principal, NotAction or NotResource in an identity policy", where)
		}
		for _, r := range st.Resource {
			if r == "*" {
				continue
			}
			f := strings.SplitN(r, ":", 6)
			if len(f) != 6 || f[0] != "arn" {
				return fmt.Errorf("%s: resource %q is not an ARN", where, r)
			}
			if f[1] != w.partition || f[3] != agentPolicyOrAny(w.region) || f[4] != agentPolicyOrAny(w.account) {
				return fmt.Errorf("%s: resource %q is not in partition %q, region %q, account %q", where, r, w.partition, agentPolicyOrAny(w.region), agentPolicyOrAny(w.account))
			}
		}
		for _, a := range st.Action {
			actions = append(actions, a)
			service, name, ok := strings.Cut(a, ":")
			if !ok || service == "" || name == "" || strings.ContainsAny(a, "*?") {
				return fmt.Errorf("%s: action %q is a wildcard or not service:Action", where, a)
			}
			if service == "ssm" {
				for _, r := range st.Resource {
					if !underCluster(r, agentPolicyReadOnly(a)) {
						return fmt.Errorf("%s: %s on %q, outside the cluster's parameter path %s", where, a, r, clusterPath)
					}
				}
			}
			if agentPolicyReadOnly(a) {
				continue
			}
			for _, r := range st.Resource {
				if r == "*" {
					return fmt.Errorf("%s: mutating %s on every resource", where, a)
				}
			}
			switch service {
			case "autoscaling":
				if got := agentPolicyCondition(st.Condition, "StringEquals", "aws:ResourceTag/autarky:cluster"); got != w.cluster {
					return fmt.Errorf("%s: %s is not limited to groups tagged autarky:cluster=%s: condition %v", where, a, w.cluster, st.Condition)
				}
				for _, r := range st.Resource {
					if !strings.Contains(r, ":autoscaling:") || !strings.Contains(r, ":autoScalingGroup:") {
						return fmt.Errorf("%s: %s on %q, not an Auto Scaling Group", where, a, r)
					}
				}
			case "ssm":
				// Exact parameters: no wildcard in the name (the region
				// and account fields are checked above), but for the
				// cluster's pool descriptors, whose sizes the agent keeps,
				// the parts of its journal and the set-aside copies of an
				// unreadable journal.
				for _, r := range st.Resource {
					_, name, _ := strings.Cut(r, ":parameter/")
					wildcardOK := name == "autarky/"+w.cluster+"/pools/*" || name == "autarky/"+w.cluster+"/journal-set-aside-*" ||
						name == "autarky/"+w.cluster+"/journal-parts/*"
					if strings.ContainsAny(name, "*?") && !wildcardOK {
						return fmt.Errorf("%s: %s on a wildcard %q", where, a, r)
					}
				}
			case "kms":
				if !viaSSM(st.Condition) {
					return fmt.Errorf("%s: %s is not limited to SSM of region %q: condition %v", where, a, agentPolicyOrAny(w.region), st.Condition)
				}
				wantKey := w.kmsKey
				if wantKey == "" {
					wantKey = fmt.Sprintf("arn:%s:kms:%s:%s:key/*", w.partition, agentPolicyOrAny(w.region), agentPolicyOrAny(w.account))
				}
				if len(st.Resource) != 1 || st.Resource[0] != wantKey {
					return fmt.Errorf("%s: %s on %v, want %s", where, a, st.Resource, wantKey)
				}
			default:
				return fmt.Errorf("%s: unexpected mutating action %s", where, a)
			}
		}
	}
	sort.Strings(actions)
	sort.Strings(want)
	if strings.Join(actions, " ") != strings.Join(want, " ") {
		return fmt.Errorf("actions\n  %v\nwant\n  %v", actions, want)
	}
	return nil
}

// agentPolicyCheckAgent checks the managers' document of w.
func agentPolicyCheckAgent(w agentPolicyWant) func(string) error {
	return func(doc string) error {
		want := []string{
			"autoscaling:DescribeAutoScalingGroups", "autoscaling:DescribeInstanceRefreshes", "autoscaling:DescribeScalingActivities",
			"autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup",
			"ec2:DescribeInstances", "kms:Decrypt",
			"ssm:DeleteParameter", "ssm:DeleteParameters", "ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath", "ssm:PutParameter",
		}
		if w.kmsKey != "" {
			want = append(want, "kms:Encrypt")
		}
		if err := agentPolicyCheckDoc(doc, w, want); err != nil {
			return fmt.Errorf("json: %w", err)
		}
		// The writes are exactly the journal and its parts, the pool
		// descriptors (the size the agent gives a pool), the join tokens and
		// their rotation record,
		// the init lock and the set-aside copies of an unreadable journal;
		// the only deletes are of the journal (after a set-aside) and its
		// parts.
		var p agentPolicyIAMDoc
		_ = json.Unmarshal([]byte(doc), &p)
		base := "/autarky/" + w.cluster
		for action, want := range map[string][]string{
			"ssm:PutParameter": {w.paramARN(base + "/generation"), w.paramARN(base + "/journal"), w.paramARN(base + "/journal-parts/*"), w.paramARN(base + "/journal-set-aside-*"), w.paramARN(base + "/pools/*"),
				w.paramARN(base + "/swarm/init-lock"), w.paramARN(base + "/tokens/manager"), w.paramARN(base + "/tokens/rotation"), w.paramARN(base + "/tokens/worker")},
			"ssm:DeleteParameter":  {w.paramARN(base + "/journal"), w.paramARN(base + "/journal-parts/*")},
			"ssm:DeleteParameters": {w.paramARN(base + "/journal"), w.paramARN(base + "/journal-parts/*")},
		} {
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
				return fmt.Errorf("json: %s on\n  %v\nwant\n  %v", action, got, want)
			}
		}
		return nil
	}
}

// agentPolicyCheckWorker checks the workers' document of w: it reads the
// worker join token and nothing else of the cluster's.
func agentPolicyCheckWorker(w agentPolicyWant) func(string) error {
	return func(doc string) error {
		if err := agentPolicyCheckDoc(doc, w, []string{"ec2:DescribeInstances", "kms:Decrypt", "ssm:GetParameter"}); err != nil {
			return fmt.Errorf("worker_json: %w", err)
		}
		token := w.paramARN("/autarky/" + w.cluster + "/tokens/worker")
		var p agentPolicyIAMDoc
		_ = json.Unmarshal([]byte(doc), &p)
		for _, st := range p.Statement {
			for _, a := range st.Action {
				if a == "ssm:GetParameter" && (len(st.Resource) != 1 || st.Resource[0] != token) {
					return fmt.Errorf("worker_json: ssm:GetParameter on %v, want only %s", st.Resource, token)
				}
			}
		}
		return nil
	}
}

const agentPolicyKey = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"

// agentPolicyConfig renders four data sources: narrowed to a region and
// account, open to any, with a customer managed key, and in aws-cn.
const agentPolicyConfig = `
data "autarky_aws_agent_policy" "narrow" {
  cluster_name = "prod"
  region       = "eu-west-1"
  account_id   = "123456789012"
}

data "autarky_aws_agent_policy" "any" {
  cluster_name = "prod"
}

data "autarky_aws_agent_policy" "key" {
  cluster_name = "web-1"
  region       = "eu-west-1"
  account_id   = "123456789012"
  kms_key_arn  = "` + agentPolicyKey + `"
}

data "autarky_aws_agent_policy" "china" {
  cluster_name = "prod"
  partition    = "aws-cn"
  region       = "cn-north-1"
}

output "policy" {
  value = data.autarky_aws_agent_policy.narrow.json
}
`

// The rendered documents parse as IAM policies and are least privilege:
// mutating calls only on the cluster's tagged groups, its parameters and
// through SSM, narrowed to the region, account and partition given; with
// no provider configuration at all, and with an empty provider block.
func TestAccAgentPolicy_render(t *testing.T) {
	cases := map[string]agentPolicyWant{
		"narrow": {cluster: "prod", partition: "aws", region: "eu-west-1", account: "123456789012"},
		"any":    {cluster: "prod", partition: "aws"},
		"key":    {cluster: "web-1", partition: "aws", region: "eu-west-1", account: "123456789012", kmsKey: agentPolicyKey},
		"china":  {cluster: "prod", partition: "aws-cn", region: "cn-north-1"},
	}
	var checks []resource.TestCheckFunc
	var stateChecks []statecheck.StateCheck
	for name, w := range cases {
		addr := "data.autarky_aws_agent_policy." + name
		checks = append(checks,
			resource.TestCheckResourceAttrWith(addr, "json", agentPolicyCheckAgent(w)),
			resource.TestCheckResourceAttrWith(addr, "worker_json", agentPolicyCheckWorker(w)),
		)
		stateChecks = append(stateChecks, statecheck.ExpectKnownValue(addr, tfjsonpath.New("id"), knownvalue.StringExact(w.cluster)))
	}
	// Open to any region and account, the ARNs say so rather than
	// leaving the fields out.
	checks = append(checks,
		resource.TestMatchResourceAttr("data.autarky_aws_agent_policy.any", "json", regexp.MustCompile(`arn:aws:ssm:\*:\*:parameter/autarky/prod/\*`)),
		resource.TestMatchResourceAttr("data.autarky_aws_agent_policy.narrow", "json", regexp.MustCompile(`arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:`)),
		resource.TestMatchResourceAttr("data.autarky_aws_agent_policy.china", "json", regexp.MustCompile(`"ssm\.cn-north-1\.amazonaws\.com"`)),
	)
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: agentPolicyProviderFactories(t),
		Steps: []resource.TestStep{
			{
				Config:            agentPolicyConfig,
				Check:             resource.ComposeAggregateTestCheckFunc(checks...),
				ConfigStateChecks: stateChecks,
			},
			{
				// An empty provider block changes nothing.
				Config:   "provider \"autarky\" {}\n" + agentPolicyConfig,
				PlanOnly: true,
			},
			{
				Config: "provider \"autarky\" {}\n" + agentPolicyConfig,
				Check:  resource.ComposeAggregateTestCheckFunc(checks...),
			},
		},
	})
}

// agentPolicyErrorRE matches text however Terraform wraps its lines.
func agentPolicyErrorRE(text string) *regexp.Regexp {
	return regexp.MustCompile(strings.ReplaceAll(regexp.QuoteMeta(text), " ", `\s+`))
}

// Bad input is refused at plan time, naming the attribute and what it
// takes.
func TestAccAgentPolicy_badInput(t *testing.T) {
	policy := func(attrs string) string {
		return "data \"autarky_aws_agent_policy\" \"bad\" {\n" + attrs + "\n}\n"
	}
	onProd := func(attr string) string { return policy("cluster_name = \"prod\"\n" + attr) }
	cases := []struct{ config, want string }{
		{policy(`cluster_name = "Prod"`), `cluster_name: "Prod" is not a DNS label: use 1 to 63 lower-case letters`},
		{policy(`cluster_name = "-prod"`), `cluster_name: "-prod" is not a DNS label`},
		{policy(`region = "eu-west-1"`), `The argument "cluster_name" is required`},
		{onProd(`region = "moon"`), `region: "moon" is not an AWS region code: use one such as "eu-west-1"`},
		{onProd(`region = "*"`), `region: "*" is not an AWS region code`},
		{onProd(`account_id = "12345"`), `account_id: "12345" is not an AWS account id: use the 12 digits of the account`},
		{onProd(`partition = "AWS"`), `partition: "AWS" is not an AWS partition`},
		{onProd(`kms_key_arn = "not-an-arn"`), `kms_key_arn: "not-an-arn" is not a KMS key ARN: use the ARN of the key itself, arn:<partition>:kms:<region>:<account id>:key/<key id>`},
		{onProd(`kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:key/*"`), `kms_key_arn: "arn:aws:kms:eu-west-1:123456789012:key/*" is not a KMS key ARN`},
		{onProd(`kms_key_arn = "arn:aws:kms:eu-west-1:123456789012:alias/tokens"`), `kms_key_arn: "arn:aws:kms:eu-west-1:123456789012:alias/tokens" is an alias ARN`},
		{onProd("region = \"eu-west-1\"\nkms_key_arn = \"arn:aws:kms:us-east-1:123456789012:key/k\""), `kms_key_arn: the key is in region "us-east-1", but SSM in region "eu-west-1" can only use keys of its own region`},
		{onProd("partition = \"aws-cn\"\nkms_key_arn = \"" + agentPolicyKey + "\""), `kms_key_arn: the key is in partition "aws", but the policy is for partition "aws-cn"`},
		{onProd(`region = "cn-north-1"`), `partition: region "cn-north-1" is in partition "aws-cn", not "aws": set partition = "aws-cn"`},
		{onProd("partition = \"aws-us-gov\"\nregion = \"eu-west-1\""), `region: "eu-west-1" is not a region of partition "aws-us-gov"`},
	}
	var steps []resource.TestStep
	for _, c := range cases {
		steps = append(steps, resource.TestStep{Config: c.config, PlanOnly: true, ExpectError: agentPolicyErrorRE(c.want)})
	}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: agentPolicyProviderFactories(t),
		Steps:                    steps,
	})
}

// The data source's schema is valid and every attribute says what it is, in
// a sentence, like the resources' (TestSchemasAreDescribed).
func TestAgentPolicyDataSourceSchemaIsDescribed(t *testing.T) {
	ds := newAgentPolicyDataSource()
	var meta datasource.MetadataResponse
	ds.Metadata(context.Background(), datasource.MetadataRequest{ProviderTypeName: "autarky"}, &meta)
	if meta.TypeName != "autarky_aws_agent_policy" {
		t.Errorf("type name %q", meta.TypeName)
	}
	var resp datasource.SchemaResponse
	ds.Schema(context.Background(), datasource.SchemaRequest{}, &resp)
	if resp.Diagnostics.HasError() {
		t.Fatal(resp.Diagnostics)
	}
	s := resp.Schema
	if d := s.ValidateImplementation(context.Background()); d.HasError() {
		t.Errorf("schema: %v", d)
	}
	if len(s.MarkdownDescription) < 20 {
		t.Error("the data source has no real description")
	}
	want := map[string]string{
		"id": "computed", "cluster_name": "required", "partition": "optional", "region": "optional",
		"account_id": "optional", "kms_key_arn": "optional", "json": "computed", "worker_json": "computed",
	}
	if len(s.Attributes) != len(want) {
		t.Errorf("%d attributes, want %d", len(s.Attributes), len(want))
	}
	for name, kind := range want {
		a, ok := s.Attributes[name].(dsschema.StringAttribute)
		if !ok {
			t.Errorf("attribute %s is missing or not a string", name)
			continue
		}
		got := map[bool]string{true: "required"}[a.Required] + map[bool]string{true: "optional"}[a.Optional] + map[bool]string{true: "computed"}[a.Computed]
		if got != kind {
			t.Errorf("attribute %s is %s, want %s", name, got, kind)
		}
		if len(a.GetMarkdownDescription()) < 20 {
			t.Errorf("attribute %s has no real description", name)
		}
		if kind != "computed" && len(a.Validators) == 0 {
			t.Errorf("attribute %s is not validated at plan time", name)
		}
	}
}

// The least-privilege check itself refuses what it is meant to refuse, so a
// renderer that grew a wildcard would fail TestAccAgentPolicy_render.
func TestAgentPolicyCheckRefusesBroadDocuments(t *testing.T) {
	w := agentPolicyWant{cluster: "prod", partition: "aws", region: "eu-west-1", account: "123456789012"}
	good := map[string]any{
		"Version": "2012-10-17",
		"Statement": []map[string]any{
			{"Sid": "Describe", "Effect": "Allow", "Action": []string{"ec2:DescribeInstances"}, "Resource": []string{"*"}},
			{
				"Sid": "Resize", "Effect": "Allow", "Action": []string{"autoscaling:SetDesiredCapacity"},
				"Resource":  []string{"arn:aws:autoscaling:eu-west-1:123456789012:autoScalingGroup:*:autoScalingGroupName/*"},
				"Condition": map[string]any{"StringEquals": map[string]string{"aws:ResourceTag/autarky:cluster": "prod"}},
			},
			{"Sid": "Read", "Effect": "Allow", "Action": []string{"ssm:GetParametersByPath"}, "Resource": []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/prod"}},
			{"Sid": "Write", "Effect": "Allow", "Action": []string{"ssm:PutParameter"}, "Resource": []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/prod/journal"}},
			{
				"Sid": "Decrypt", "Effect": "Allow", "Action": []string{"kms:Decrypt"},
				"Resource":  []string{"arn:aws:kms:eu-west-1:123456789012:key/*"},
				"Condition": map[string]any{"StringEquals": map[string]string{"kms:ViaService": "ssm.eu-west-1.amazonaws.com"}},
			},
		},
	}
	actions := []string{"ec2:DescribeInstances", "autoscaling:SetDesiredCapacity", "ssm:GetParametersByPath", "ssm:PutParameter", "kms:Decrypt"}
	render := func(change func(st []map[string]any)) string {
		b, _ := json.Marshal(good)
		var d map[string]any
		_ = json.Unmarshal(b, &d)
		var sts []map[string]any
		for _, st := range d["Statement"].([]any) {
			sts = append(sts, st.(map[string]any))
		}
		change(sts)
		out, _ := json.Marshal(d)
		return string(out)
	}
	if err := agentPolicyCheckDoc(render(func([]map[string]any) {}), w, actions); err != nil {
		t.Fatalf("a least-privilege document is refused: %v", err)
	}
	for name, change := range map[string]func([]map[string]any){
		"action *":               func(st []map[string]any) { st[0]["Action"] = []string{"*"} },
		"service wildcard":       func(st []map[string]any) { st[1]["Action"] = []string{"autoscaling:*"} },
		"mutation on *":          func(st []map[string]any) { st[1]["Resource"] = []string{"*"} },
		"resize without the tag": func(st []map[string]any) { delete(st[1], "Condition") },
		"resize another cluster": func(st []map[string]any) {
			st[1]["Condition"] = map[string]any{"StringEquals": map[string]string{"aws:ResourceTag/autarky:cluster": "other"}}
		},
		"read another cluster": func(st []map[string]any) {
			st[2]["Resource"] = []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/production"}
		},
		"read everything": func(st []map[string]any) { st[2]["Resource"] = []string{"*"} },
		"write a wildcard": func(st []map[string]any) {
			st[3]["Resource"] = []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/prod/*"}
		},
		"write a broader journal wildcard": func(st []map[string]any) {
			st[3]["Resource"] = []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/autarky/prod/journal*"}
		},
		"decrypt without ssm": func(st []map[string]any) { delete(st[4], "Condition") },
		"another region": func(st []map[string]any) {
			st[3]["Resource"] = []string{"arn:aws:ssm:us-east-1:123456789012:parameter/autarky/prod/journal"}
		},
		"any account": func(st []map[string]any) {
			st[1]["Resource"] = []string{"arn:aws:autoscaling:eu-west-1:*:autoScalingGroup:*:autoScalingGroupName/*"}
		},
		"unexpected mutating call": func(st []map[string]any) {
			st[0]["Action"] = []string{"ec2:TerminateInstances"}
			st[0]["Resource"] = []string{"arn:aws:ec2:eu-west-1:123456789012:instance/*"}
		},
		"NotAction":                 func(st []map[string]any) { st[0]["NotAction"] = []string{"iam:*"} },
		"Deny is not least in kind": func(st []map[string]any) { st[0]["Effect"] = "Deny" },
	} {
		if err := agentPolicyCheckDoc(render(change), w, actions); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The documentation's example plans and renders least-privilege documents.
func TestAccAgentPolicy_example(t *testing.T) {
	example, err := os.ReadFile("../../examples/data-sources/autarky_aws_agent_policy/data-source.tf")
	if err != nil {
		t.Fatal(err)
	}
	w := agentPolicyWant{cluster: "prod", partition: "aws", region: "eu-west-1"}
	resource.ParallelTest(t, resource.TestCase{
		PreCheck:                 func() { agentPolicyPreCheck(t) },
		ProtoV6ProviderFactories: agentPolicyProviderFactories(t),
		Steps: []resource.TestStep{{
			Config: string(example),
			Check: resource.ComposeAggregateTestCheckFunc(
				resource.TestCheckResourceAttrWith("data.autarky_aws_agent_policy.prod", "json", agentPolicyCheckAgent(w)),
				resource.TestCheckResourceAttrWith("data.autarky_aws_agent_policy.prod", "worker_json", agentPolicyCheckWorker(w)),
				func(s *terraform.State) error {
					for name, check := range map[string]func(string) error{"agent_policy": agentPolicyCheckAgent(w), "worker_policy": agentPolicyCheckWorker(w)} {
						o, ok := s.RootModule().Outputs[name]
						if !ok {
							return fmt.Errorf("no output %s", name)
						}
						v, _ := o.Value.(string)
						if err := check(v); err != nil {
							return fmt.Errorf("output %s: %w", name, err)
						}
					}
					return nil
				},
			),
		}},
	})
}
