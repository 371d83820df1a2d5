// Command terraform-provider-autarky serves the Autarky Terraform provider.
package main

import (
	"context"
	"flag"
	"log"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

	// The platforms the provider serves: each registers itself, and the
	// provider's code names none of them. The local platform is Linux's
	// alone (platform_local_linux.go).
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/aws"
	_ "github.com/autarky/terraform-provider-autarky/internal/platform/gcp"
	"github.com/autarky/terraform-provider-autarky/internal/provider"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	var debug bool
	flag.BoolVar(&debug, "debug", false, "run the provider with support for debuggers like delve")
	flag.Parse()

	err := providerserver.Serve(context.Background(), provider.New(version), providerserver.ServeOpts{
		Address: "registry.terraform.io/autarky/autarky",
		Debug:   debug,
	})
	if err != nil {
		log.Fatal(err.Error())
	}
}
