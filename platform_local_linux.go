package main

// The local platform's nodes are dockerd processes in Linux namespaces
// (UTS, mount) of the machine running Terraform: it exists on Linux only.
// The darwin and windows builds of the provider serve the clouds, and a
// `platform = "local"` cluster there is refused naming the platforms the
// binary has (platform.OpenBackend).
import _ "github.com/autarky/terraform-provider-autarky/internal/platform/local"
