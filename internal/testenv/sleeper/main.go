// Command sleeper is the smallest task a benchmark can fill a swarm with:
// it waits for SIGTERM or SIGINT and exits 0. It answers the signal
// itself, since a container's first process gets no default action for
// SIGTERM, and a task that ignored it would hold every `docker service rm`
// for the stop grace period. Built static and stripped (SleeperBinary) it
// is about a megabyte, so under vfs, where every container holds its own
// copy of the image, a thousand tasks cost about a gigabyte of disk, not
// the hundred the agent binary (the usual workload image) would.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
	<-c
}
