// Package supervise keeps autarky-agent running: the agent tells its
// supervisor it is alive with the sd_notify protocol (a datagram such as
// "WATCHDOG=1" to the unix socket named by $NOTIFY_SOCKET), which systemd
// speaks on a cloud manager and which this package's Supervisor speaks on
// the local platform.
package supervise

import (
	"net"
	"os"
	"strings"
)

// Notify sends state ("READY=1", "WATCHDOG=1", "STOPPING=1", ...) to the
// supervisor named by $NOTIFY_SOCKET; without one it does nothing.
func Notify(state string) error {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return nil
	}
	if strings.HasPrefix(addr, "@") {
		addr = "\x00" + addr[1:] // an abstract socket
	}
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: addr, Net: "unixgram"})
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = conn.Write([]byte(state))
	return err
}
