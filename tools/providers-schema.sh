#!/usr/bin/env bash
# providers-schema.sh OUT: the provider's schema as `providers schema -json`
# gives it, for tfplugindocs --providers-schema. OpenTofu writes it, since
# Terraform 1.5 (the CLI the tests and `terraform fmt` use) leaves out
# ephemeral resources; the provider is built from this checkout and found
# through a dev override, so nothing is downloaded.
set -euo pipefail
out=$(realpath -m "$1")
tofu=${AUTARKY_TOFU_PATH:-tofu}
command -v "$tofu" >/dev/null || { echo "providers-schema.sh: OpenTofu is not at $tofu: run 'make tools'" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd .. && go build -o "$work/bin/terraform-provider-autarky" .)
cat >"$work/cli.tfrc" <<TFRC
provider_installation {
  dev_overrides {
    "registry.terraform.io/hashicorp/autarky" = "$work/bin"
  }
  direct {}
}
TFRC
cat >"$work/main.tf" <<'TF'
terraform {
  required_providers {
    autarky = { source = "registry.terraform.io/hashicorp/autarky" }
  }
}
TF
(cd "$work" && TF_CLI_CONFIG_FILE="$work/cli.tfrc" "$tofu" providers schema -json) >"$out"
