# The custom roles of the service accounts of cluster "prod", whose objects
# live in the bucket "my-autarky-state" of project "my-project".
data "autarky_gcp_agent_roles" "prod" {
  project      = "my-project"
  cluster_name = "prod"
  bucket       = "my-autarky-state"
}

# The managers' roles by id. With the google provider, each becomes a
# custom role, granted where its scope says, with its condition:
#
#   resource "google_project_iam_custom_role" "managers" {
#     for_each    = local.manager_roles
#     project     = "my-project"
#     role_id     = each.value.role_id
#     title       = each.value.title
#     description = each.value.description
#     permissions = each.value.permissions
#   }
#
#   resource "google_storage_bucket_iam_member" "managers" {
#     for_each = { for id, r in local.manager_roles : id => r if r.scope == "bucket" }
#     bucket   = "my-autarky-state" # uniform bucket-level access
#     role     = google_project_iam_custom_role.managers[each.key].name
#     member   = "serviceAccount:${google_service_account.managers.email}"
#     condition {
#       title       = each.value.condition.title
#       description = each.value.condition.description
#       expression  = each.value.condition.expression
#     }
#   }
#
# and google_project_iam_member for the roles of scope "project" (with the
# condition block where the role has one). The workers' roles the same way,
# from workers_json.
locals {
  manager_roles = { for r in jsondecode(data.autarky_gcp_agent_roles.prod.managers_json) : r.role_id => r }
  worker_roles  = { for r in jsondecode(data.autarky_gcp_agent_roles.prod.workers_json) : r.role_id => r }
}

output "manager_roles" {
  value = local.manager_roles
}

output "worker_roles" {
  value = local.worker_roles
}

output "manager_permissions" {
  value = data.autarky_gcp_agent_roles.prod.managers_permissions
}
