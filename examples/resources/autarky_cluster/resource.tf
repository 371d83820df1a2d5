resource "autarky_cluster" "demo" {
  name             = "demo"
  platform         = "local"
  manager_count    = 3
  heartbeat_period = "5s"
  labels           = { env = "demo" }
}

output "docker_host" {
  value = autarky_cluster.demo.docker_host
}
