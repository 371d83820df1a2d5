// Package policy holds the descriptors the provider writes to a store and the
// agent reads back: clusters, node pools and their policies. It is the single
// source of truth for their fields, their validation and their serialisation,
// so the provider and the agent can never disagree about what a value means.
package policy
