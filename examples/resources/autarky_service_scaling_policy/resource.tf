# The replicas of the stack service "shop_web": sized to about 50 requests
# a second per replica, and grown when Alertmanager routes an alert with
# service=shop_web and scale=up; shrunk by scale=down alerts or when the
# load allows, never on missing or stale metrics.
resource "autarky_service_scaling_policy" "web" {
  cluster_id   = autarky_cluster.demo.id
  service      = "shop_web"
  min_replicas = 2
  max_replicas = 30
  max_step     = 5

  prometheus = [{
    name         = "requests"
    address      = "http://127.0.0.1:9090"
    query        = "sum(rate(http_requests_total{job=\"shop_web\"}[1m])) / count(up{job=\"shop_web\"} == 1)"
    target_value = 50
  }]

  alert = [{ name = "ShopWebSlow", step = 3 }]
}
