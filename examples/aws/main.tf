# A self-sufficient Swarm on AWS: three managers and a web pool, each an
# Auto Scaling Group; the agent on the managers heals and scales them.
# Credentials come from the standard AWS chain (environment, profile,
# instance role).

terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
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

variable "instance_profile" {
  description = "An instance profile whose role has the policy of data.autarky_aws_agent_policy.this."
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

data "autarky_aws_agent_policy" "this" {
  cluster_name = "prod"
  region       = "eu-west-1"
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
    instance_profile = var.instance_profile
    tags             = { team = "platform" }
  }

  agent = {
    enabled       = true
    binary_url    = var.agent_url
    binary_sha256 = var.agent_sha256
  }
}

resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.prod.id
  name         = "web"
  min_size     = 2
  max_size     = 10
  desired_size = 3
  labels       = { tier = "web" }

  aws {
    instance_type = "c6i.large"
  }
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
