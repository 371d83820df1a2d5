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
