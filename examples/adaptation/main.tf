# The whole loop of a self-sufficient Swarm: a service's replicas follow
# its load (read by Prometheus), the replicas that do not fit grow the node
# pool, and when the load goes both shrink, draining first. `make demo`
# runs it as its third act, with a workload whose load it steps. Run as
# root.
terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
    }
  }
}

variable "prometheus_address" {
  description = "The Prometheus that scrapes the workload's load gauge and the agents' metrics."
  type        = string
  default     = "http://127.0.0.1:9090"
}

variable "workload_binary" {
  description = "A static executable loaded into every node as the image autarky/workload:latest: the autarky-agent binary serves as one."
  type        = string
}

provider "autarky" {
  local {
    workload_binary = var.workload_binary
  }
}

resource "autarky_cluster" "demo" {
  name             = "demo"
  platform         = "local"
  manager_count    = 1
  heartbeat_period = "1s"
  agent            = { enabled = true, evaluation_interval = "1s" }
}

# The pool the replicas run on: one node at rest, more when replicas pend.
resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.demo.id
  name         = "web"
  min_size     = 1
  max_size     = 3
  desired_size = 1
  labels       = { tier = "web" }
}

resource "autarky_scaling_policy" "web" {
  node_pool_id   = autarky_node_pool.web.id
  pending_tasks  = {}   # grow for replicas that do not fit
  scale_in_after = "5s" # demo values: production keeps the default (10m)
  cooldown_down  = "5s"
}

# The service "web" (made by the demo with `docker service create`): as
# many replicas as the load gauge says, one replica per unit of load.
resource "autarky_service_scaling_policy" "web" {
  cluster_id     = autarky_cluster.demo.id
  service        = "web"
  min_replicas   = 1
  max_replicas   = 5
  cooldown_up    = "2s"
  cooldown_down  = "5s"
  max_sample_age = "5s"

  prometheus = [{
    name         = "load"
    address      = var.prometheus_address
    query        = "autarky_workload_load / scalar(autarky_service_running_replicas{service=\"web\"})"
    target_value = 1
  }]
}

output "docker_host" {
  value = autarky_cluster.demo.docker_host
}

output "agent_addresses" {
  value = [for a in autarky_cluster.demo.manager_addresses : "http://${split(":", a)[0]}:9910"]
}
