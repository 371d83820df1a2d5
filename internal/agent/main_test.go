package agent_test

import (
	"os"
	"testing"

	"github.com/autarky/terraform-provider-autarky/internal/testenv"
)

func TestMain(m *testing.M) {
	// BenchmarkEvaluate5000Nodes starts this binary again as its engine.
	testenv.RecordedEngineMain()
	code := m.Run()
	if agentBin != "" {
		// The agent binary the harness built for the agent processes.
		_ = os.Remove(agentBin)
	}
	os.Exit(code)
}
