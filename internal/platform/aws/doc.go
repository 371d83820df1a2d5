// Package aws is the AWS platform: a node pool is an Auto Scaling Group
// started from a launch template, and the store the provider writes for the
// agent (cluster descriptor, pools, policies, the agent's journal) and the
// Swarm join tokens live in SSM Parameter Store under /autarky/<cluster>/.
// It talks to AWS through aws-sdk-go-v2 only.
//
// What is here:
//
//   - client.go: SDK clients from the standard credential chain, custom
//     endpoints only when given (emulators, private endpoints), and a
//     retryer that waits out throttling and scaling activities with
//     jittered exponential backoff and counts every retry in
//     autarky_aws_retries_total{operation,code}.
//   - groups.go: node groups over Auto Scaling Groups: batched describes
//     (at most 100 groups per call), absolute SetDesiredCapacity,
//     TerminateInstanceInAutoScalingGroup with or without decrement, and
//     Busy, which tells the agent when the group is doing its own work and
//     must not be fought.
//   - store.go: the SSM Parameter Store store; join tokens as SecureString.
//   - userdata.go: the user data template every instance boots with.
//   - iam.go: the least-privilege IAM policy the agent needs.
//
// The tests run against moto (PyPI moto[server]), a real emulator of the
// AWS APIs that keeps state like AWS does, started by the test on a free
// loopback port; it is not a mock written by us. Where the tests inject
// faults (throttling) they do it with a loopback proxy in front of moto,
// and they fill the one gap moto has on these paths — it does not
// implement DescribeInstanceRefreshes and reports no scaling activities —
// with AWS-shaped answers from that proxy; every test says where it does.
package aws
