// Package gcp is the Google Cloud platform: a node pool is a regional
// Managed Instance Group started from an instance template, and the store
// the provider writes for the agent (cluster descriptor, pools, policies,
// the agent's journal, the Swarm join tokens) is a Cloud Storage bucket the
// user names, objects under autarky/<cluster>/. It is an adapter of the
// shared group layer (internal/platform/group).
package gcp

import (
	_ "cloud.google.com/go/compute/apiv1"
	_ "cloud.google.com/go/storage"
)
