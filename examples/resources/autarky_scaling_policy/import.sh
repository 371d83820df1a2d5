# A scaling policy is imported by the id of the pool it scales.
terraform import autarky_scaling_policy.web demo/web
