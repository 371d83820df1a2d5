resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.demo.id
  name         = "web"
  min_size     = 1
  max_size     = 10
  desired_size = 2
  labels       = { tier = "web" }

  # Return from apply only when the nodes are Ready in Swarm.
  wait_for_capacity_timeout = "5m"

  timeouts {
    create = "15m"
  }
}
