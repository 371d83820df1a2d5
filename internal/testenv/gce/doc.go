// Package gce is a fake Compute Engine service for tests, written by us:
// no Compute Engine emulator exists on the registries we install from, so
// the gcp platform's tests run against this one. It is not Google's code
// and it is not an emulator of all of Compute Engine: it models the few
// resources the managed-instance-group adapter uses, and it is held to
// Google's own description of the API so that it cannot drift into
// accepting what Compute Engine refuses or answering what it never would.
//
// # Held to the discovery document
//
// Every request is checked against compute/v1/compute-api.json, the
// official discovery document shipped in the Go module
// google.golang.org/api (read from the module cache at the version go.mod
// names, located with `go list -m`, offline; GCE_DISCOVERY_JSON names
// another copy for a machine without the go command): the method is found by HTTP
// verb and path under the service path compute/v1/; path and query
// parameters must be known to the method (or be the API's global
// parameters), required ones present, and typed as described (integers,
// 64-bit integers as decimal strings, booleans, enums, patterns, bounds);
// the JSON body must match the method's request schema recursively
// ($ref, arrays, additionalProperties maps): unknown fields are refused,
// 64-bit integers must be JSON strings, enums and name patterns hold, and
// fields the schema's annotations require for the method are present. A
// request that fails gets a 400 in Google's error shape naming the field.
// This is stricter than Google in one way: Google, like any proto3 JSON
// parser, also takes a 64-bit integer as a JSON number; the fake holds
// clients to the type the document gives. A requestId must be a UUID, as
// the document says.
//
// Every response the fake gives is checked against the method's response
// schema the same way; one that fails is a bug of the fake: it answers 500
// and fails the test (t.Errorf on the testing.TB given to Start). A method
// or a field the fake does not model is refused with 501 and fails the
// test too, so a gap of the fake never passes for Compute Engine's
// behaviour.
//
// # What it models
//
// One server holds any number of projects (any name is accepted):
//
//   - global instance templates: insert, get, delete (refused while a group
//     uses the template), list; properties kept as sent;
//   - regional managed instance groups: insert, get, list, delete, patch
//     (JSON merge patch: template or one version, target size, update
//     policy, distribution policy other than its zones, fingerprint),
//     resize, deleteInstances (with skipInstancesOnValidationError),
//     recreateInstances, listManagedInstances (paged only when the group's
//     listManagedInstancesResults is PAGINATED, as on Google; PAGELESS,
//     the default, answers everything at once). A group reconciles toward
//     its target size in the background: a new managed instance is
//     CREATING with a VM PROVISIONING, then NONE and RUNNING after
//     Options.CreateDelay; a deleted one is DELETING (VM STOPPING) and gone
//     after Options.DeleteDelay; recreateInstances keeps the name and gives
//     a new id; a VM deleted behind the group's back is recreated the same
//     way. Status: isStable, versionTarget.isReached (every instance on the
//     group's template), autoscaler (only when the test attaches one with
//     SetAutoscaler), currentActions counts. Update policy defaults are
//     filled as Google fills them (type OPPORTUNISTIC,
//     instanceRedistributionType PROACTIVE, ...); with PROACTIVE the group
//     rebalances its zones by deleting an instance of the fullest zone,
//     busy or not, once the zones differ by more than one;
//   - instances of the groups: get, list, aggregatedList (paged), delete. VMs live in the
//     zones of the group's distribution policy (default zones a, b and c of
//     the region), are named baseInstanceName-xxxx, and carry a numeric id,
//     a private networkIP, a creationTimestamp, the template's labels,
//     metadata (plus instance-template and created-by, as Google adds),
//     service accounts, tags, disks and network interfaces;
//   - operations: every mutating call answers an Operation (global for
//     templates, regional for groups, zonal for instances) that is DONE
//     when the action is scheduled, as Google's are, not when VMs exist;
//     deleting a group or a VM is DONE when it is gone. Operations can be
//     got and waited on (regionOperations, globalOperations,
//     zoneOperations);
//   - list filters (instances, templates, groups): the AIP-160 form
//     (`labels.KEY = "VALUE"`, `!=`, `labels.KEY:*`, on any string field,
//     parenthesized or not, joined by AND) and the regular-expression form
//     (one `name eq "RE2"` or `ne`, matching the whole value);
//   - requestId: a mutating call repeated with a requestId already seen
//     answers the first call's operation and does not act again.
//
// Tests steer it: SetFault (429 rateLimitExceeded, 503 backendError or any
// status in Google's error shape, before or after the call acts, a delay,
// a request left hanging, an operation kept RUNNING), SetQuotaFault (VM creation fails with
// QUOTA_EXCEEDED in the managed instance's lastAttempt.errors until lifted),
// OnInstance and Instances (the VMs, to play their boot), DeleteInstance (a
// VM dies), SetAutoscaler, Calls and CallCounts (calls by method id),
// Requests (what was sent).
//
// # What it does not model
//
// Zonal groups, instances outside groups (instances.insert), regional
// templates, autoscalers other than their attachment, health checks and
// autohealing policies, stateful policies, target pools, canary versions
// (more than one version), rolling updates (a new template reaches an
// instance only when it is recreated, as with OPPORTUNISTIC), abandoning,
// stopping, suspending and resuming instances, listErrors, IAM and
// authentication (any or no credentials are accepted), the existence of
// what a template names (machine types, images, networks, service
// accounts are kept as sent, not checked), the defaults Google fills into a
// template's properties, quotas other than
// the quota fault, filters beyond those above, orderBy, partial responses
// (fields), and the empty zones with warnings that Google lists in an
// aggregated list.
package gce
