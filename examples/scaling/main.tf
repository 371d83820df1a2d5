# A Swarm that adapts: the pool grows when tasks do not fit or the load
# rises, and shrinks, draining first, when nodes are not needed. Run as root.
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
  max_size     = 20
  desired_size = 2 # the initial size: the agent owns it from now on
  labels       = { tier = "web" }
}

resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "5s" # demo values: production keeps the defaults (5m, 10m)
  min_node_age    = "0s"
}

resource "autarky_scaling_policy" "web" {
  node_pool_id  = autarky_node_pool.web.id
  max_size      = 20
  cooldown_up   = "30s"
  cooldown_down = "5m"

  pending_tasks = {} # present = enabled

  prometheus = [{
    name         = "cpu"
    address      = "http://127.0.0.1:9090"
    query        = "avg(rate(app_busy_seconds_total[1m]))"
    target_value = 0.6
  }]

  alert = [{ name = "WebOverloaded", step = 2 }]
}

output "docker_host" {
  value = autarky_cluster.demo.docker_host
}
