# A self-sufficient Swarm on Google Cloud: three managers and a web pool,
# each a regional Managed Instance Group; the agent on the managers heals
# and scales them. Credentials are Application Default Credentials
# (GOOGLE_APPLICATION_CREDENTIALS, `gcloud auth application-default login`,
# workload identity federation), or set credentials in the gcp block.
#
# Managers and workers run as different service accounts: the managers'
# may resize and replace the cluster's VMs and write its objects in the
# bucket (the agent needs that); the workers' may only find the managers
# and read the worker join token, so a compromised worker can neither read
# the manager token nor touch the cluster.

terraform {
  required_providers {
    autarky = {
      source = "autarky/autarky"
    }
    google = {
      source = "hashicorp/google"
    }
  }
}

variable "project" {
  type = string
}

variable "region" {
  type    = string
  default = "europe-west1"
}

variable "subnetwork" {
  description = "regions/<region>/subnetworks/<name>, with Private Google Access; its firewall lets the nodes reach each other on TCP 2377 and 7946, UDP 7946 and 4789."
  type        = string
}

variable "agent_url" {
  description = "Where managers download the static linux autarky-agent (for example a release asset)."
  type        = string
}

variable "agent_sha256" {
  type = string
}

locals {
  # Known at plan time, so the autarky provider's configuration is too.
  bucket = "${var.project}-autarky"
}

provider "google" {
  project = var.project
  region  = var.region
}

provider "autarky" {
  gcp {
    project = var.project
    region  = var.region
    bucket  = local.bucket
  }
}

# The clusters' stores: objects under autarky/<cluster>/. The roles' IAM
# Conditions on object names need uniform bucket-level access.
resource "google_storage_bucket" "autarky" {
  name                        = local.bucket
  location                    = upper(var.region)
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
}

data "autarky_gcp_agent_roles" "prod" {
  project      = var.project
  cluster_name = "prod"
  bucket       = local.bucket
}

# One service account for the managers, one for the workers.
resource "google_service_account" "managers" {
  account_id   = "autarky-prod-managers"
  display_name = "Autarky cluster prod: managers and their agent"
}

resource "google_service_account" "workers" {
  account_id   = "autarky-prod-workers"
  display_name = "Autarky cluster prod: workers"
}

locals {
  # Each role by id, with the member it is granted to.
  manager_grants = { for r in jsondecode(data.autarky_gcp_agent_roles.prod.managers_json) : r.role_id => merge(r, { member = "serviceAccount:${google_service_account.managers.email}" }) }
  worker_grants  = { for r in jsondecode(data.autarky_gcp_agent_roles.prod.workers_json) : r.role_id => merge(r, { member = "serviceAccount:${google_service_account.workers.email}" }) }
  grants         = merge(local.manager_grants, local.worker_grants)
}

resource "google_project_iam_custom_role" "autarky" {
  for_each    = local.grants
  role_id     = each.value.role_id
  title       = each.value.title
  description = each.value.description
  permissions = each.value.permissions
}

resource "google_project_iam_member" "autarky" {
  for_each = { for id, g in local.grants : id => g if g.scope == "project" }
  project  = var.project
  role     = google_project_iam_custom_role.autarky[each.key].name
  member   = each.value.member
  dynamic "condition" {
    for_each = lookup(each.value, "condition", null) == null ? [] : [each.value.condition]
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}

resource "google_storage_bucket_iam_member" "autarky" {
  for_each = { for id, g in local.grants : id => g if g.scope == "bucket" }
  bucket   = google_storage_bucket.autarky.name
  role     = google_project_iam_custom_role.autarky[each.key].name
  member   = each.value.member
  dynamic "condition" {
    for_each = lookup(each.value, "condition", null) == null ? [] : [each.value.condition]
    content {
      title       = condition.value.title
      description = condition.value.description
      expression  = condition.value.expression
    }
  }
}

resource "autarky_cluster" "prod" {
  name          = "prod"
  platform      = "gcp"
  manager_count = 3

  gcp {
    zones           = ["${var.region}-b", "${var.region}-c", "${var.region}-d"]
    machine_type    = "e2-standard-2"
    image           = "projects/debian-cloud/global/images/family/debian-12"
    subnetwork      = var.subnetwork
    service_account = google_service_account.managers.email
    network_tags    = ["autarky-swarm"]
  }

  agent = {
    enabled       = true
    binary_url    = var.agent_url
    binary_sha256 = var.agent_sha256
  }

  # The managers' first boot writes the join tokens with these grants.
  depends_on = [google_project_iam_member.autarky, google_storage_bucket_iam_member.autarky]
}

resource "autarky_node_pool" "web" {
  cluster_id   = autarky_cluster.prod.id
  name         = "web"
  min_size     = 2
  max_size     = 10
  desired_size = 3
  labels       = { tier = "web" }

  gcp {
    machine_type    = "e2-standard-4"
    service_account = google_service_account.workers.email
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
