# A service scaling policy is imported by "<cluster name>/<service name>".
terraform import autarky_service_scaling_policy.web demo/shop_web
