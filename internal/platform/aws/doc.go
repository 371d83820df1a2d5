// Package aws is the AWS platform: a node pool is an Auto Scaling Group
// started from a launch template, and the store the provider writes for the
// agent (cluster descriptor, pools, policies, the agent's journal) and the
// Swarm join tokens live in SSM Parameter Store under /autarky/<cluster>/.
// It talks to AWS through aws-sdk-go-v2 only.
//
// It is an adapter of the shared group layer (internal/platform/group),
// which does the cluster's orchestration, the agent's group semantics and
// the store's rules the same way as on gcp. What is here:
//
//   - client.go, credentials.go, limits.go: SDK clients from the standard
//     credential chain (assume_role, web identity), custom endpoints only
//     when given (emulators, private endpoints), a retryer that waits out
//     throttling and scaling activities with jittered exponential backoff
//     and counts every retry in autarky_aws_retries_total{operation,code},
//     and per-call deadlines and a rate limit;
//   - groups.go: Auto Scaling Groups: batched describes (at most 100
//     groups per call), absolute SetDesiredCapacity,
//     TerminateInstanceInAutoScalingGroup with or without decrement, and
//     Busy, which tells the agent when the group is doing its own work and
//     must not be fought;
//   - asg.go: group.Groups over those groups, their launch templates and
//     EC2's instance details;
//   - store.go: group.KV over SSM Parameter Store (join tokens as
//     SecureString), and the journal's own layout in small parameters;
//   - userdata.go: the user data template every instance boots with;
//   - iam.go: the least-privilege IAM policy the agent needs;
//   - provision.go, cluster.go: how these are put together.
//
// The tests run against moto (PyPI moto[server]), a real emulator of the
// AWS APIs that keeps state like AWS does, started by the test on a free
// loopback port; it is not a mock written by us. Where the tests inject
// faults (throttling) they do it with a loopback proxy in front of moto,
// and they fill the one gap moto has on these paths — it does not
// implement DescribeInstanceRefreshes and reports no scaling activities —
// with AWS-shaped answers from that proxy; every test says where it does.
package aws
