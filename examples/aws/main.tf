# A self-sufficient Swarm on AWS: three managers and a web pool, each an
# Auto Scaling Group; the agent on the managers heals and scales them.
# Credentials come from the standard AWS chain (environment, profile,
# instance role).
#
# Managers and workers hold different IAM roles: the managers' may resize
# and replace the cluster's instances and write its parameters (the agent
# needs that); the workers' may only find the managers and read the worker
# join token, so a compromised worker can neither read the manager token
# nor touch the cluster.

terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
    }
    aws = {
      source = "hashicorp/aws"
    }
  }
}

variable "ami" {
  description = "An AMI with Docker, or any Debian/Ubuntu/Amazon Linux AMI (user data installs Docker)."
  type        = string
}

variable "subnets" {
  type = list(string)
}

variable "security_group" {
  description = "Lets the nodes reach each other on TCP 2377 and 7946, UDP 7946 and 4789."
  type        = string
}

variable "agent_url" {
  description = "Where managers download the static linux autarky-agent (for example a release asset)."
  type        = string
}

variable "agent_sha256" {
  type = string
}

provider "autarky" {
  aws {
    region = "eu-west-1"
  }
}

provider "aws" {
  region = "eu-west-1"
}

data "autarky_aws_agent_policy" "this" {
  cluster_name = "prod"
  region       = "eu-west-1"
}

# One role and instance profile for the managers, one for the workers.
data "aws_iam_policy_document" "ec2_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "managers" {
  name               = "autarky-prod-managers"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "managers" {
  name   = "autarky-agent"
  role   = aws_iam_role.managers.id
  policy = data.autarky_aws_agent_policy.this.json
}

resource "aws_iam_instance_profile" "managers" {
  name = "autarky-prod-managers"
  role = aws_iam_role.managers.name
}

resource "aws_iam_role" "workers" {
  name               = "autarky-prod-workers"
  assume_role_policy = data.aws_iam_policy_document.ec2_assume.json
}

resource "aws_iam_role_policy" "workers" {
  name   = "autarky-worker"
  role   = aws_iam_role.workers.id
  policy = data.autarky_aws_agent_policy.this.worker_json
}

resource "aws_iam_instance_profile" "workers" {
  name = "autarky-prod-workers"
  role = aws_iam_role.workers.name
}

resource "autarky_cluster" "prod" {
  name          = "prod"
  platform      = "aws"
  manager_count = 3

  aws {
    ami              = var.ami
    instance_type    = "t3.medium"
    subnets          = var.subnets
    security_groups  = [var.security_group]
    instance_profile = aws_iam_instance_profile.managers.name
    tags             = { team = "platform" }
  }

  agent = {
    enabled       = true
    binary_url    = var.agent_url
    binary_sha256 = var.agent_sha256
  }

  # The managers' first boot writes the join tokens with this policy.
  depends_on = [aws_iam_role_policy.managers]
}

resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.prod.id
  name         = "web"
  min_size     = 2
  max_size     = 10
  desired_size = 3
  labels       = { tier = "web" }

  aws {
    instance_type    = "c6i.large"
    instance_profile = aws_iam_instance_profile.workers.name
  }

  # The profile must hold its policy before an instance boots with it.
  depends_on = [aws_iam_role_policy.workers]
}

resource "autarky_healing_policy" "web" {
  node_pool_id    = autarky_node_pool.web.id
  unhealthy_after = "1m"
}

resource "autarky_scaling_policy" "web" {
  node_pool_id  = autarky_node_pool.web.id
  pending_tasks = {}
}

output "agent_iam_policy" {
  value = data.autarky_aws_agent_policy.this.json
}

output "worker_iam_policy" {
  value = data.autarky_aws_agent_policy.this.worker_json
}
