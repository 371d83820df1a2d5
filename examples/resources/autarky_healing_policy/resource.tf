# Replace a worker of the web pool once it has been Down for 5 minutes (the
# default), unless it joined less than 10 minutes ago (min_node_age, the
# default): production values that ride out partitions and reboots. A demo
# sets seconds: unhealthy_after = "5s", min_node_age = "0s".
resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "5m"
  min_node_age    = "10m"
  join_timeout    = "5m"

  # More than 20% of the pool unhealthy at once looks like a partition, not
  # dead nodes: healing stops and the agent says so.
  max_unhealthy_percent       = 20
  max_concurrent_replacements = 1
}

# Heal the managers too, with the defaults; a manager is replaced only while
# the cluster keeps quorum, one at a time.
resource "autarky_healing_policy" "managers" {
  node_pool_id = autarky_cluster.demo.manager_pool_id
}
