package provider

// The platforms the tests' provider serves, as main.go links them: each
// registers itself with package platform.
import (
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/local"
)
