package agent_test

import (
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if agentBin != "" {
		// The agent binary the harness built for the agent processes.
		_ = os.Remove(agentBin)
	}
	os.Exit(code)
}
