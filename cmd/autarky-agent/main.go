// Command autarky-agent runs beside every Swarm manager of an Autarky
// cluster; the agent on the Raft leader replaces failed nodes and resizes
// node pools.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	// The platforms this binary ships: each registers how the agent opens
	// a cluster on it (platform.Open); run.go names none of them. The
	// clouds are in platform_aws.go and platform_gcp.go, which the build
	// tags noaws and nogcp leave out of a smaller agent.
	"github.com/autarky/terraform-provider-autarky/internal/packaging"
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/local"
	"github.com/autarky/terraform-provider-autarky/internal/workload"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `Usage: autarky-agent <command> [flags]

autarky-agent runs beside every Swarm manager of an Autarky cluster. Only the
agent on the Raft leader acts: it replaces failed nodes and resizes node pools
according to the healing and scaling policies declared with Terraform, or,
for a swarm Terraform did not build, in a configuration file (run --config).

Commands:
  run        run the agent beside a manager (see autarky-agent run -h)
  check-config
             check a configuration file (--config FILE, with run's flags) and
             print the settings and what it adopts, starting nothing
  supervise  run the agent and restart it when it exits or its watchdog fires,
             where no systemd supervises it (see autarky-agent supervise -h)
  status     print a running agent's status for a person (--json for the raw document)
  health     exit 0 when a running agent's /healthz answers 200 (the image's HEALTHCHECK)
  launcher   local platform: start and stop nodes for an agent in a container (see autarky-agent launcher -h)
  unit       print the systemd unit that runs the agent as a service
  version    print the version
  workload   run the small demo and test workload (the autarky/workload image)
  help       print this help
`

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	// Inside the workload image the binary is /workload.
	if filepath.Base(args[0]) == "workload" {
		return exit(workload.Run(args[1:], stdout), stderr)
	}
	if len(args) < 2 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[1] {
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "autarky-agent %s\n", version)
		return 0
	case "help", "--help", "-h", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	case "run":
		return exit(runAgent(args[2:], stderr), stderr)
	case "check-config":
		return exit(runOrCheck(args[2:], stdout, stderr), stderr)
	case "supervise":
		return exit(superviseCmd(args[2:], stdout, stderr), stderr)
	case "status":
		return exit(statusCmd(args[2:], stdout, stderr), stderr)
	case "health":
		return exit(healthCmd(args[2:], stdout, stderr), stderr)
	case "launcher":
		return exit(launcherCmd(args[2:], stderr), stderr)
	case "unit":
		_, err := io.WriteString(stdout, packaging.Unit)
		return exit(err, stderr)
	case "workload":
		return exit(workload.Run(args[2:], stdout), stderr)
	default:
		fmt.Fprintf(stderr, "autarky-agent: unknown command %q\n\n%s", args[1], usage)
		return 2
	}
}

func exit(err error, stderr io.Writer) int {
	if err != nil {
		fmt.Fprintf(stderr, "autarky-agent: %v\n", err)
		return 1
	}
	return 0
}
