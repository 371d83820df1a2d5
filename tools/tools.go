//go:build generate

package tools

import (
	// Documentation generation.
	_ "github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs"
)

// Format the example Terraform files and generate the docs/ directory.
// Formatting needs the Terraform CLI on PATH, the schema OpenTofu at
// $AUTARKY_TOFU_PATH (`make tools` caches both; `make generate` points at them).
//go:generate terraform fmt -recursive ../examples/
//go:generate ./providers-schema.sh providers-schema.json
//go:generate go run github.com/hashicorp/terraform-plugin-docs/cmd/tfplugindocs generate --provider-dir .. --provider-name autarky --providers-schema providers-schema.json
//go:generate rm -f providers-schema.json
