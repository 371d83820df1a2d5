package agent

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/swarm"
)

// ListenNode is the host of a listen address that stands for the node's
// own address in its swarm: `--listen node:9910`. An agent run as a Swarm
// service has one command line for every manager, yet each must listen on
// its own manager's address, where the other agents probe the leader's
// /healthz (on a cloud, the private address the boot scripts give the
// unit; on the local platform, whose managers share this machine's
// network, the node's loopback address). The engine knows it.
const ListenNode = "node"

// ResolveListen is listen with the host ListenNode replaced by the swarm
// address of the engine at dockerHost; any other listen is returned as it
// is.
func ResolveListen(ctx context.Context, dockerHost, listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || host != ListenNode {
		return listen, nil
	}
	cli, err := swarm.Dial(dockerHost)
	if err != nil {
		return "", fmt.Errorf("listen %s: %w", listen, err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	addr, err := cli.LocalNodeAddr(ctx)
	if err != nil {
		return "", fmt.Errorf("listen %s: the node's address from %s: %w", listen, dockerHost, err)
	}
	if addr == "" {
		return "", fmt.Errorf("listen %s: the engine at %s is in no swarm, so its node has no address", listen, dockerHost)
	}
	return net.JoinHostPort(addr, port), nil
}
