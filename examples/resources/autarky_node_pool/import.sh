# A node pool is imported by "<cluster name>/<pool name>".
terraform import autarky_node_pool.web demo/web
