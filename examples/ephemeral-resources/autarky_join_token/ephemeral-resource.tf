# A machine outside the node pools is joined by a bootstrap of its own,
# which reads the worker token from a file of mode 0600. The token reaches
# it as an ephemeral value: Terraform 1.10+ (and OpenTofu 1.11+) never write
# it to the state or the plan.
ephemeral "autarky_join_token" "worker" {
  cluster_id = autarky_cluster.prod.id
  role       = "worker"
}

resource "terraform_data" "bootstrap_token" {
  provisioner "local-exec" {
    command = "umask 077 && printf %s \"$TOKEN\" > /srv/bootstrap/swarm-worker-token"
    environment = {
      TOKEN = ephemeral.autarky_join_token.worker.token
    }
  }
}
