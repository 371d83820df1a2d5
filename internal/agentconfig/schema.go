package agentconfig

import "github.com/hashicorp/hcl/v2"

// The file's shape, as gohcl decodes it. Every attribute is optional and
// a pointer, so that "not in the file" (the flag's default, or the
// policy's) differs from a zero the user wrote. Each block keeps its body
// (the ",body" field) so that a value refused after decoding is reported
// at its own line.

type fileSchema struct {
	Cluster            *string `hcl:"cluster,optional"`
	Platform           *string `hcl:"platform,optional"`
	DockerHost         *string `hcl:"docker_host,optional"`
	Listen             *string `hcl:"listen,optional"`
	DryRun             *bool   `hcl:"dry_run,optional"`
	EvaluationInterval *string `hcl:"evaluation_interval,optional"`
	DrainTimeout       *string `hcl:"drain_timeout,optional"`
	LogFormat          *string `hcl:"log_format,optional"`
	AlertTokenFile     *string `hcl:"alert_token_file,optional"`
	StatusTokenFile    *string `hcl:"status_token_file,optional"`

	Local  *localBlock  `hcl:"local,block"`
	AWS    *awsBlock    `hcl:"aws,block"`
	GCP    *gcpBlock    `hcl:"gcp,block"`
	Notify *notifyBlock `hcl:"notify,block"`
	Adopt  *adoptBlock  `hcl:"adopt,block"`

	Body hcl.Body `hcl:",body"`
}

type localBlock struct {
	StateDir *string   `hcl:"state_dir,optional"`
	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}

type awsBlock struct {
	Region   *string   `hcl:"region,optional"`
	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}

type gcpBlock struct {
	Project         *string   `hcl:"project,optional"`
	Region          *string   `hcl:"region,optional"`
	Bucket          *string   `hcl:"bucket,optional"`
	ComputeEndpoint *string   `hcl:"compute_endpoint,optional"`
	StorageEndpoint *string   `hcl:"storage_endpoint,optional"`
	DefRange        hcl.Range `hcl:",def_range"`
	Body            hcl.Body  `hcl:",body"`
}

type notifyBlock struct {
	WebhookFile  *string  `hcl:"webhook_file,optional"`
	Format       *string  `hcl:"format,optional"`
	StaleAfter   *string  `hcl:"stale_after,optional"`
	ResolveAfter *string  `hcl:"resolve_after,optional"`
	Body         hcl.Body `hcl:",body"`
}

type adoptBlock struct {
	NodePools []nodePoolBlock       `hcl:"node_pool,block"`
	Services  []serviceScalingBlock `hcl:"service_scaling_policy,block"`
	DefRange  hcl.Range             `hcl:",def_range"`
	Body      hcl.Body              `hcl:",body"`
}

type nodePoolBlock struct {
	Name        string            `hcl:"name,label"`
	Group       *string           `hcl:"group,optional"`
	Role        *string           `hcl:"role,optional"`
	MinSize     *int64            `hcl:"min_size,optional"`
	MaxSize     *int64            `hcl:"max_size,optional"`
	DesiredSize *int64            `hcl:"desired_size,optional"`
	Labels      map[string]string `hcl:"labels,optional"`

	Healing *healingBlock `hcl:"healing_policy,block"`
	Scaling *scalingBlock `hcl:"scaling_policy,block"`

	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}

type healingBlock struct {
	UnhealthyAfter            *string   `hcl:"unhealthy_after,optional"`
	JoinTimeout               *string   `hcl:"join_timeout,optional"`
	MinNodeAge                *string   `hcl:"min_node_age,optional"`
	MaxUnhealthyPercent       *int64    `hcl:"max_unhealthy_percent,optional"`
	MaxConcurrentReplacements *int64    `hcl:"max_concurrent_replacements,optional"`
	Enabled                   *bool     `hcl:"enabled,optional"`
	DefRange                  hcl.Range `hcl:",def_range"`
	Body                      hcl.Body  `hcl:",body"`
}

type scalingBlock struct {
	MinSize             *int64  `hcl:"min_size,optional"`
	MaxSize             *int64  `hcl:"max_size,optional"`
	EvaluationInterval  *string `hcl:"evaluation_interval,optional"`
	CooldownUp          *string `hcl:"cooldown_up,optional"`
	CooldownDown        *string `hcl:"cooldown_down,optional"`
	ScaleInAfter        *string `hcl:"scale_in_after,optional"`
	MaxStep             *int64  `hcl:"max_step,optional"`
	MaxDisruptedPercent *int64  `hcl:"max_disrupted_percent,optional"`
	DrainTimeout        *string `hcl:"drain_timeout,optional"`
	NodeSelector        *string `hcl:"node_selector,optional"`
	MaxSampleAge        *string `hcl:"max_sample_age,optional"`
	ProvisionTimeout    *string `hcl:"provision_timeout,optional"`
	Enabled             *bool   `hcl:"enabled,optional"`

	PendingTasks *pendingTasksBlock `hcl:"pending_tasks,block"`
	Prometheus   []prometheusBlock  `hcl:"prometheus,block"`
	Alert        []alertBlock       `hcl:"alert,block"`

	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}

type pendingTasksBlock struct {
	Enabled *bool `hcl:"enabled,optional"`
}

type prometheusBlock struct {
	Name        string   `hcl:"name"`
	Address     string   `hcl:"address"`
	Query       string   `hcl:"query"`
	TargetValue *float64 `hcl:"target_value,optional"`
	Upper       *float64 `hcl:"upper,optional"`
	Lower       *float64 `hcl:"lower,optional"`
	Step        *int64   `hcl:"step,optional"`
	Body        hcl.Body `hcl:",body"`
}

type alertBlock struct {
	Name string   `hcl:"name"`
	Step *int64   `hcl:"step,optional"`
	Body hcl.Body `hcl:",body"`
}

type serviceScalingBlock struct {
	Service      string  `hcl:"service,label"`
	MinReplicas  *int64  `hcl:"min_replicas,optional"`
	MaxReplicas  *int64  `hcl:"max_replicas"`
	CooldownUp   *string `hcl:"cooldown_up,optional"`
	CooldownDown *string `hcl:"cooldown_down,optional"`
	MaxStep      *int64  `hcl:"max_step,optional"`
	ScaleUpBy    *int64  `hcl:"scale_up_by,optional"`
	ScaleDownBy  *int64  `hcl:"scale_down_by,optional"`
	MaxSampleAge *string `hcl:"max_sample_age,optional"`
	DryRun       *bool   `hcl:"dry_run,optional"`
	Enabled      *bool   `hcl:"enabled,optional"`

	Prometheus []prometheusBlock `hcl:"prometheus,block"`
	Alert      []alertBlock      `hcl:"alert,block"`

	DefRange hcl.Range `hcl:",def_range"`
	Body     hcl.Body  `hcl:",body"`
}
