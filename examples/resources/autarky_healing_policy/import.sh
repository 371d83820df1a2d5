# A healing policy is imported by the id of the node pool it heals, "<cluster name>/<pool name>".
terraform import autarky_healing_policy.web demo/web
