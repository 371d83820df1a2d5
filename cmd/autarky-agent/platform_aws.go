//go:build !noaws

package main

// The aws platform, left out with -tags noaws.
import _ "github.com/autarky/terraform-provider-autarky/internal/platform/aws"
