# A Swarm that heals itself: an agent beside every manager replaces a worker
# that dies, and a manager without ever losing quorum. Run as root.
terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
    }
  }
}

provider "autarky" {}

resource "autarky_cluster" "demo" {
  name             = "demo"
  platform         = "local"
  manager_count    = 3
  heartbeat_period = "1s"
  agent            = { enabled = true }
}

resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.demo.id
  name         = "web"
  min_size     = 1
  max_size     = 10
  desired_size = 3
}

resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "5s" # demo values: production keeps the defaults (5m, 10m)
  min_node_age    = "0s"
}

resource "autarky_healing_policy" "managers" {
  node_pool_id = autarky_cluster.demo.manager_pool_id
}

output "docker_host" {
  value = autarky_cluster.demo.docker_host
}

output "agent_addresses" {
  value = [for a in autarky_cluster.demo.manager_addresses : "http://${split(":", a)[0]}:9910"]
}
