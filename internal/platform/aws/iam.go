package aws

import (
	"encoding/json"
	"fmt"
	"regexp"

	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// PolicyInput names the cluster and where it lives, for the IAM policies.
type PolicyInput struct {
	Cluster string
	// Partition is "aws" unless given ("aws-cn", "aws-us-gov").
	Partition string
	// Region and AccountID narrow every ARN; empty matches any.
	Region    string
	AccountID string
	// KMSKeyARN is the customer managed key the join tokens are encrypted
	// with; empty means SSM's AWS managed key, and kms:Decrypt then names
	// any key of the account, still only through SSM.
	KMSKeyARN string
}

// PolicyDocument is an IAM policy document.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one statement of a PolicyDocument.
type Statement struct {
	Sid       string                       `json:"Sid"`
	Effect    string                       `json:"Effect"`
	Action    []string                     `json:"Action"`
	Resource  []string                     `json:"Resource"`
	Condition map[string]map[string]string `json:"Condition,omitempty"`
}

var (
	partitionRE = regexp.MustCompile(`^aws(-[a-z]+)*$`)
	accountRE   = regexp.MustCompile(`^[0-9]{12}$`)
	kmsARNRE    = regexp.MustCompile(`^arn:aws(-[a-z]+)*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)/[A-Za-z0-9/_-]+$`)
)

func (in PolicyInput) validate() error {
	if err := policy.ValidateName(in.Cluster); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if in.Partition != "" && !partitionRE.MatchString(in.Partition) {
		return fmt.Errorf("partition %q is not an AWS partition", in.Partition)
	}
	if in.Region != "" && policy.ValidateAWSRegion(in.Region) != nil {
		return fmt.Errorf("region %q is not an AWS region name", in.Region)
	}
	if in.AccountID != "" && !accountRE.MatchString(in.AccountID) {
		return fmt.Errorf("account id %q: use the 12 digits of the account", in.AccountID)
	}
	if in.KMSKeyARN != "" && !kmsARNRE.MatchString(in.KMSKeyARN) {
		return fmt.Errorf("KMS key %q is not a KMS key ARN", in.KMSKeyARN)
	}
	return nil
}

func orAny(s string) string {
	if s == "" {
		return "*"
	}
	return s
}

func (in PolicyInput) partition() string {
	if in.Partition == "" {
		return "aws"
	}
	return in.Partition
}

// parameterARN is the ARN of an SSM parameter name (which starts with /).
func (in PolicyInput) parameterARN(name string) string {
	return fmt.Sprintf("arn:%s:ssm:%s:%s:parameter%s", in.partition(), orAny(in.Region), orAny(in.AccountID), name)
}

// JournalSetAsideParameterPattern matches every name SetAsideJournal
// gives a set-aside journal, for IAM.
func JournalSetAsideParameterPattern(cluster string) string {
	return ClusterPath(cluster) + "/journal-set-aside-*"
}

// decryptViaSSM lets SSM decrypt (and, with a customer managed key,
// encrypt) SecureString parameters for the role, and nothing else.
func (in PolicyInput) decryptViaSSM(encrypt bool) Statement {
	key := in.KMSKeyARN
	if key == "" {
		key = fmt.Sprintf("arn:%s:kms:%s:%s:key/*", in.partition(), orAny(in.Region), orAny(in.AccountID))
	}
	actions := []string{"kms:Decrypt"}
	if encrypt && in.KMSKeyARN != "" {
		actions = append(actions, "kms:Encrypt")
	}
	cond := map[string]map[string]string{"StringEquals": {"kms:ViaService": "ssm." + in.Region + ".amazonaws.com"}}
	if in.Region == "" {
		cond = map[string]map[string]string{"StringLike": {"kms:ViaService": "ssm.*.amazonaws.com"}}
	}
	return Statement{Sid: "DecryptTokensViaSSM", Effect: "Allow", Action: actions, Resource: []string{key}, Condition: cond}
}

// AgentPolicy is the least-privilege IAM policy of the managers' instance
// role, which autarky-agent and the managers' user data run with:
//
//   - describe calls on anything (they take no resource-level permissions);
//   - SetDesiredCapacity and TerminateInstanceInAutoScalingGroup only on
//     Auto Scaling Groups tagged autarky:cluster=<cluster>;
//   - SSM reads only under /autarky/<cluster>;
//   - SSM writes only to the agent's journal and its parts, the pool
//     descriptors (the size the agent gives a pool), the join tokens and
//     the init lock (the first manager's user data writes the last two;
//     the agent rewrites the tokens and their rotation record when it
//     rotates them),
//     and the set-aside copies of an unreadable journal
//     (journal-set-aside-*);
//   - SSM deletes only of the journal (after it was set aside) and its
//     parts (those the journal's head no longer names);
//   - kms:Decrypt only through SSM.
func AgentPolicy(in PolicyInput) (PolicyDocument, error) {
	if err := in.validate(); err != nil {
		return PolicyDocument{}, fmt.Errorf("IAM policy: %w", err)
	}
	path := ClusterPath(in.Cluster)
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{
			Sid:    "Describe",
			Effect: "Allow",
			Action: []string{
				"autoscaling:DescribeAutoScalingGroups",
				"autoscaling:DescribeInstanceRefreshes",
				"autoscaling:DescribeScalingActivities",
				"ec2:DescribeInstances",
			},
			Resource: []string{"*"},
		},
		{
			Sid:    "ResizeAndReplaceOwnGroupsOnly",
			Effect: "Allow",
			Action: []string{
				"autoscaling:SetDesiredCapacity",
				"autoscaling:TerminateInstanceInAutoScalingGroup",
			},
			Resource: []string{fmt.Sprintf("arn:%s:autoscaling:%s:%s:autoScalingGroup:*:autoScalingGroupName/*",
				in.partition(), orAny(in.Region), orAny(in.AccountID))},
			Condition: map[string]map[string]string{"StringEquals": {"aws:ResourceTag/" + TagCluster: in.Cluster}},
		},
		{
			Sid:      "ReadClusterParameters",
			Effect:   "Allow",
			Action:   []string{"ssm:GetParameter", "ssm:GetParameters", "ssm:GetParametersByPath"},
			Resource: []string{in.parameterARN(path), in.parameterARN(path + "/*")},
		},
		{
			Sid:    "WriteJournalPoolSizesGenerationTokensInitLockAndSetAsides",
			Effect: "Allow",
			Action: []string{"ssm:PutParameter"},
			Resource: []string{
				in.parameterARN(JournalParameter(in.Cluster)),
				in.parameterARN(JournalPartsPath(in.Cluster) + "/*"),
				in.parameterARN(path + "/pools/*"),
				in.parameterARN(GenerationParameter(in.Cluster)),
				in.parameterARN(InitLockParameter(in.Cluster)),
				in.parameterARN(TokenParameter(in.Cluster, policy.RoleWorker)),
				in.parameterARN(TokenParameter(in.Cluster, policy.RoleManager)),
				in.parameterARN(TokenRotationParameter(in.Cluster)),
				in.parameterARN(JournalSetAsideParameterPattern(in.Cluster)),
			},
		},
		{
			// SetAsideJournal removes the journal it copied, and a save
			// the parts no head names any more; no other parameter may be
			// deleted.
			Sid:    "DeleteJournalAfterSetAsideAndOldParts",
			Effect: "Allow",
			Action: []string{"ssm:DeleteParameter", "ssm:DeleteParameters"},
			Resource: []string{
				in.parameterARN(JournalParameter(in.Cluster)),
				in.parameterARN(JournalPartsPath(in.Cluster) + "/*"),
			},
		},
		in.decryptViaSSM(true),
	}}, nil
}

// WorkerPolicy is the least-privilege IAM policy of a worker pool's
// instance role, for its user data: find the managers, read the worker
// join token (not the manager's), decrypt it through SSM.
func WorkerPolicy(in PolicyInput) (PolicyDocument, error) {
	if err := in.validate(); err != nil {
		return PolicyDocument{}, fmt.Errorf("IAM policy: %w", err)
	}
	return PolicyDocument{Version: "2012-10-17", Statement: []Statement{
		{Sid: "FindManagers", Effect: "Allow", Action: []string{"ec2:DescribeInstances"}, Resource: []string{"*"}},
		{
			Sid:      "ReadWorkerToken",
			Effect:   "Allow",
			Action:   []string{"ssm:GetParameter"},
			Resource: []string{in.parameterARN(TokenParameter(in.Cluster, policy.RoleWorker))},
		},
		in.decryptViaSSM(false),
	}}, nil
}

// JSON renders the document as IAM takes it.
func (d PolicyDocument) JSON() (string, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// RenderAgentPolicy renders AgentPolicy as JSON, for the data source.
func RenderAgentPolicy(in PolicyInput) (string, error) {
	d, err := AgentPolicy(in)
	if err != nil {
		return "", err
	}
	return d.JSON()
}

// rights renders AgentPolicy and WorkerPolicy for the provider's data
// source (platform.RenderRights).
func rights(in platform.RightsInput) (platform.Rights, error) {
	pi := PolicyInput{Cluster: in.Cluster, Partition: in.Partition, Region: in.Region, AccountID: in.AccountID, KMSKeyARN: in.KMSKeyARN}
	var out platform.Rights
	for _, side := range []struct {
		doc   func(PolicyInput) (PolicyDocument, error)
		to    *string
		whose string
	}{{AgentPolicy, &out.Managers, "agent"}, {WorkerPolicy, &out.Workers, "worker"}} {
		d, err := side.doc(pi)
		if err == nil {
			*side.to, err = d.JSON()
		}
		if err != nil {
			return platform.Rights{}, fmt.Errorf("the %s policy: %w", side.whose, err)
		}
	}
	return out, nil
}
