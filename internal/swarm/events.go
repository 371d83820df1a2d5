package swarm

import (
	"context"
	"time"

	"github.com/docker/docker/api/types/events"
	"github.com/docker/docker/api/types/filters"
)

// Event kinds the agent wakes on.
const (
	EventNode    = "node"
	EventService = "service"
)

// ClusterEvents sends the kind of every node event (a node joined, left,
// changed state or role) and service event (created, updated: tasks may be
// pending) on the returned channel, reconnecting until ctx ends. Sends never
// block: a pending signal is enough to wake the reader.
func (c *Client) ClusterEvents(ctx context.Context) <-chan string {
	out := make(chan string, 1)
	go func() {
		for ctx.Err() == nil {
			msgs, errs := c.api.Events(ctx, events.ListOptions{Filters: filters.NewArgs(
				filters.Arg("type", string(events.NodeEventType)), filters.Arg("type", string(events.ServiceEventType)))})
		read:
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-msgs:
					select {
					case out <- string(m.Type):
					default:
					}
				case <-errs:
					break read
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
		}
	}()
	return out
}
