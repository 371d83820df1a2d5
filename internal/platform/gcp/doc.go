// Package gcp is the Google Cloud platform: a node pool is a regional
// Managed Instance Group started from an instance template, and the store
// the provider writes for the agent (cluster descriptor, pools, policies,
// the agent's journal, the Swarm join tokens) is a Cloud Storage bucket the
// user names, objects under autarky/<cluster>/. It is an adapter of the
// shared group layer (internal/platform/group), which does the cluster's
// orchestration, the agent's group semantics and the store's rules the
// same way as on aws.
//
// What is here:
//
//   - client.go: the Compute Engine REST clients (cloud.google.com/go/compute/apiv1)
//     with Application Default Credentials, a credentials file or
//     impersonation, a per-project rate limit, retries of throttling and
//     unavailability with jittered backoff (autarky_gcp_retries_total) and
//     a requestId on every mutating call, so a retry never acts twice;
//   - groups.go: group.Groups over regional Managed Instance Groups;
//   - store.go: group.KV over a Cloud Storage bucket, object generations
//     as revisions;
//   - startup.go, startup.sh.tmpl: the startup script every VM boots with;
//   - iam.go: the least-privilege custom roles of managers and workers;
//   - platform.go: how these are put together;
//   - register.go: the registration, with package platform, of the agent's
//     and the provider's gcp and of the roles' rendering.
//
// The tests run against fake-gcs-server (a real Cloud Storage emulator,
// installed by `make tools`) and, for Compute Engine, against the fake in
// internal/testenv/gce, written by us because no Compute Engine emulator
// exists on the registries we install from; it is held to Google's own
// discovery document, request and response.
package gcp
