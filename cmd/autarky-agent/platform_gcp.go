//go:build !nogcp

package main

// The gcp platform, left out with -tags nogcp: its Compute Engine and
// Cloud Storage clients are most of the agent's size (about 92 MB with
// them, 18 MB without, stripped).
import _ "github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
