# A self-sufficient Swarm on this machine: three managers and a pool of two
# workers, each a real dockerd process. Run as root.
terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
    }
  }
}

provider "autarky" {}

resource "autarky_cluster" "demo" {
  name          = "demo"
  platform      = "local"
  manager_count = 3
}

resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.demo.id
  name         = "web"
  min_size     = 1
  max_size     = 10
  desired_size = 2
  labels       = { tier = "web" }
}

output "docker_host" {
  value = autarky_cluster.demo.docker_host
}
