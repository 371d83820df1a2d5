// Package packaging holds the files that install autarky-agent as a
// service, embedded by the code that installs them.
//
// autarky-agent.service is the systemd unit the aws and gcp boot scripts
// install on managers and the agent-service guide tells people to install
// by hand: one file, so every manager runs the same sandboxed unit. What
// differs between machines (the cluster, the platform, the listen
// address) is never written into the unit: the unit's ExecStart takes
// $AUTARKY_AGENT_FLAGS from its EnvironmentFile, /etc/autarky/agent.env,
// which the boot scripts write (EnvironmentFile).
//
// The unit explains each of its settings in comments. The binary embeds
// it and prints it (`autarky-agent unit`): the boot scripts install the
// unit from the agent they just installed and checked, so the unit always
// matches the agent, and EC2's 16 KB of user data (most of which a
// manager's boot script already takes) does not carry it.
//
// autarky-agent.stack.yml runs the agent as a Swarm global service on the
// managers, from the image of the repository's Dockerfile (FROM scratch:
// the static agent and CA certificates). Its test deploys it on a local
// cluster as the agent-service guide says (stack_test.go); on the local
// platform the agents start nodes through the launcher
// (internal/platform/local launcher.go).
package packaging

import _ "embed"

// Unit is the systemd unit of the agent, with its comments.
//
//go:embed autarky-agent.service
var Unit string

// UnitName is the unit's file name under /etc/systemd/system.
const UnitName = "autarky-agent.service"

// UnitPath is where the boot scripts install Unit.
const UnitPath = "/etc/systemd/system/" + UnitName

// EnvironmentFile is the unit's EnvironmentFile: one line,
// AUTARKY_AGENT_FLAGS=<the flags of autarky-agent run>.
const EnvironmentFile = "/etc/autarky/agent.env"

// FlagsVariable is the variable of EnvironmentFile that the unit's
// ExecStart expands, split at white space, into run's flags.
const FlagsVariable = "AUTARKY_AGENT_FLAGS"

// User is the unit's dedicated user, a system user in group docker.
const User = "autarky-agent"
