# A cluster is imported by its name.
terraform import autarky_cluster.demo demo
