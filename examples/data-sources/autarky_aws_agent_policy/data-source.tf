# The IAM policies of the instance roles of cluster "prod" in eu-west-1.
data "autarky_aws_agent_policy" "prod" {
  cluster_name = "prod"
  region       = "eu-west-1"
}

# The managers' role, which autarky-agent runs with.
output "agent_policy" {
  value = data.autarky_aws_agent_policy.prod.json
}

# The worker pools' role.
output "worker_policy" {
  value = data.autarky_aws_agent_policy.prod.worker_json
}
