package agentconfig

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"

	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// adoption turns the adopt block into policy's types: each starts from
// policy's defaults (the Terraform resources' defaults), takes what the
// file sets, and is checked by the type's own Validate. A refusal is
// placed at the attribute the validator's message names.
func (d *diagnostics) adoption(b *adoptBlock) *adoption {
	a := &adoption{defRange: b.DefRange}
	seen := map[string]hcl.Range{}
	for _, nb := range b.NodePools {
		if !d.once(seen, "node_pool", nb.Name, nb.DefRange) {
			continue
		}
		if p, ok := d.pool(nb); ok {
			a.pools = append(a.pools, p)
		}
	}
	groups := map[string]string{}
	for _, p := range a.pools {
		if other, dup := groups[p.group]; dup && p.group != "" {
			r := p.groupRange
			d.add(&r, "Invalid group", fmt.Sprintf("node_pools %q and %q both name group %q: a group belongs to one pool.", other, p.pool.Name, p.group))
		}
		groups[p.group] = p.pool.Name
	}
	services := map[string]hcl.Range{}
	for _, sb := range b.Services {
		if !d.once(services, "service_scaling_policy", sb.Service, sb.DefRange) {
			continue
		}
		if s, ok := d.service(sb); ok {
			a.services = append(a.services, s)
		}
	}
	return a
}

// once records block kind "label" at r in seen, refusing a second one.
func (d *diagnostics) once(seen map[string]hcl.Range, kind, label string, r hcl.Range) bool {
	if prev, dup := seen[label]; dup {
		d.add(&r, "Duplicate "+kind, fmt.Sprintf("%s %q is declared twice (first at %s): declare each once.", kind, label, prev))
		return false
	}
	seen[label] = r
	return true
}

// refuse places a validator's error in block body, summarised as being
// about the block named what.
func (d *diagnostics) refuse(err error, what string, body hcl.Body, def hcl.Range, nested map[string][]hcl.Body) {
	r, field := placeOf(err.Error(), body, def, nested)
	summary := "Invalid " + what
	if field != "" {
		summary = "Invalid " + field + " in " + what
	}
	d.add(&r, summary, err.Error())
}

func (d *diagnostics) pool(b nodePoolBlock) (adoptedPool, bool) {
	what := fmt.Sprintf("node_pool %q", b.Name)
	p := policy.Pool{Cluster: checkName, Name: b.Name, Role: policy.RoleWorker, Labels: b.Labels,
		WaitForCapacityTimeout: policy.DefaultWaitForCapacityTimeout.String(), SizeOwner: policy.SizeOwnerTerraform}
	if b.Role != nil {
		p.Role = *b.Role
	}
	if b.MinSize != nil {
		p.MinSize = *b.MinSize
	}
	if b.MaxSize == nil {
		r := b.DefRange
		d.add(&r, "Missing max_size in "+what, "A node pool needs max_size, the most nodes it may have (1 or more), as autarky_node_pool does.")
		return adoptedPool{}, false
	}
	p.MaxSize = *b.MaxSize
	// desired_size defaults to min_size, as autarky_node_pool's does.
	p.DesiredSize = p.MinSize
	if b.DesiredSize != nil {
		p.DesiredSize = *b.DesiredSize
	}
	if b.Scaling != nil {
		// A scaling policy hands the pool's size to the agent.
		p.SizeOwner = policy.SizeOwnerAgent
	}
	if err := p.Validate(); err != nil {
		// The pool's name is the block's label.
		r, field := placeOf(err.Error(), b.Body, b.DefRange, nil)
		if field == "name" {
			r = b.DefRange
		}
		summary := "Invalid " + what
		if field != "" && field != "name" {
			summary = "Invalid " + field + " in " + what
		}
		d.add(&r, summary, err.Error())
		return adoptedPool{}, false
	}
	out := adoptedPool{pool: p, defRange: b.DefRange}
	if b.Group != nil {
		out.group, out.groupRange = *b.Group, attrRange(b.Body, "group")
		if *b.Group == "" {
			r := out.groupRange
			d.add(&r, "Invalid group in "+what, "group is empty: name the pool's existing Auto Scaling Group, or leave group out.")
			return adoptedPool{}, false
		}
	}
	ok := true
	if b.Healing != nil {
		h := healing(b.Healing, p.ID())
		if err := h.Validate(); err != nil {
			d.refuse(err, what+" healing_policy", b.Healing.Body, b.Healing.DefRange, nil)
			ok = false
		}
		out.healing = &h
	}
	if b.Scaling != nil {
		s := scaling(b.Scaling, p.ID())
		if err := s.Validate(); err != nil {
			d.refuse(err, what+" scaling_policy", b.Scaling.Body, b.Scaling.DefRange, checkBodies(b.Scaling.Prometheus, b.Scaling.Alert))
			ok = false
		}
		out.scaling = &s
	}
	return out, ok
}

func healing(b *healingBlock, poolID string) policy.Healing {
	h := policy.DefaultHealing(poolID)
	setStr(&h.UnhealthyAfter, b.UnhealthyAfter)
	setStr(&h.JoinTimeout, b.JoinTimeout)
	setStr(&h.MinNodeAge, b.MinNodeAge)
	setInt(&h.MaxUnhealthyPercent, b.MaxUnhealthyPercent)
	setInt(&h.MaxConcurrentReplacements, b.MaxConcurrentReplacements)
	setBool(&h.Enabled, b.Enabled)
	return h
}

func scaling(b *scalingBlock, poolID string) policy.Scaling {
	s := policy.DefaultScaling(poolID)
	s.MinSize, s.MaxSize = b.MinSize, b.MaxSize
	setStr(&s.EvaluationInterval, b.EvaluationInterval)
	setStr(&s.CooldownUp, b.CooldownUp)
	setStr(&s.CooldownDown, b.CooldownDown)
	setStr(&s.ScaleInAfter, b.ScaleInAfter)
	setInt(&s.MaxStep, b.MaxStep)
	setInt(&s.MaxDisruptedPercent, b.MaxDisruptedPercent)
	setStr(&s.DrainTimeout, b.DrainTimeout)
	setStr(&s.NodeSelector, b.NodeSelector)
	setStr(&s.MaxSampleAge, b.MaxSampleAge)
	setStr(&s.ProvisionTimeout, b.ProvisionTimeout)
	setBool(&s.Enabled, b.Enabled)
	// pending_tasks {} turns the check on, as `pending_tasks = {}` does in
	// Terraform; enabled = false in it leaves it off.
	if pt := b.PendingTasks; pt != nil && (pt.Enabled == nil || *pt.Enabled) {
		s.PendingTasks = &policy.PendingTasksCheck{}
	}
	s.Prometheus, s.Alert = checks(b.Prometheus, b.Alert)
	return s
}

func (d *diagnostics) service(b serviceScalingBlock) (policy.ServiceScaling, bool) {
	what := fmt.Sprintf("service_scaling_policy %q", b.Service)
	s := policy.DefaultServiceScaling(b.Service, 0)
	s.ClusterID = checkName
	setInt(&s.MinReplicas, b.MinReplicas)
	setInt(&s.MaxReplicas, b.MaxReplicas)
	setStr(&s.CooldownUp, b.CooldownUp)
	setStr(&s.CooldownDown, b.CooldownDown)
	setInt(&s.MaxStep, b.MaxStep)
	setInt(&s.ScaleUpBy, b.ScaleUpBy)
	setInt(&s.ScaleDownBy, b.ScaleDownBy)
	setStr(&s.MaxSampleAge, b.MaxSampleAge)
	setBool(&s.DryRun, b.DryRun)
	setBool(&s.Enabled, b.Enabled)
	s.Prometheus, s.Alert = checks(b.Prometheus, b.Alert)
	if err := s.Validate(); err != nil {
		r, field := placeOf(err.Error(), b.Body, b.DefRange, checkBodies(b.Prometheus, b.Alert))
		if field == "service" {
			r = b.DefRange
		}
		summary := "Invalid " + what
		if field != "" && field != "service" {
			summary = "Invalid " + field + " in " + what
		}
		d.add(&r, summary, err.Error())
		return s, false
	}
	return s, true
}

func checks(pb []prometheusBlock, ab []alertBlock) ([]policy.PrometheusCheck, []policy.AlertCheck) {
	var prom []policy.PrometheusCheck
	for _, c := range pb {
		pc := policy.PrometheusCheck{Name: c.Name, Address: c.Address, Query: c.Query, TargetValue: c.TargetValue, Upper: c.Upper, Lower: c.Lower}
		setInt(&pc.Step, c.Step)
		prom = append(prom, pc)
	}
	var alerts []policy.AlertCheck
	for _, c := range ab {
		ac := policy.AlertCheck{Name: c.Name}
		setInt(&ac.Step, c.Step)
		alerts = append(alerts, ac)
	}
	return prom, alerts
}

// checkBodies are the nested check blocks, by the field name a
// validator's message uses ("prometheus[1].query").
func checkBodies(pb []prometheusBlock, ab []alertBlock) map[string][]hcl.Body {
	out := map[string][]hcl.Body{}
	for _, c := range pb {
		out["prometheus"] = append(out["prometheus"], c.Body)
	}
	for _, c := range ab {
		out["alert"] = append(out["alert"], c.Body)
	}
	return out
}

func setStr(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func setInt(dst *int64, v *int64) {
	if v != nil {
		*dst = *v
	}
}

func setBool(dst *bool, v *bool) {
	if v != nil {
		*dst = *v
	}
}
