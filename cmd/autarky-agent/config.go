package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/autarky/terraform-provider-autarky/internal/agentconfig"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// applyConfig gives the flags the values of the configuration file at
// path, except the flags set on the command line: those override the
// file. Each value then goes through its flag's own parsing and the
// checks run makes of every flag, so the file and the flags cannot be
// held to two sets of rules.
func applyConfig(fs *flag.FlagSet, path string) (*config, error) {
	c := &config{cmdline: map[string]bool{}}
	fs.Visit(func(fl *flag.Flag) { c.cmdline[fl.Name] = true })
	if path == "" {
		return c, nil
	}
	f, err := agentconfig.Load(path)
	if err != nil {
		return nil, err
	}
	for name, v := range f.Flags {
		if c.cmdline[name] {
			continue
		}
		if err := fs.Set(name, v); err != nil {
			return nil, fmt.Errorf("%s: %s: %w", f.Where(name), name, err)
		}
	}
	c.file = f
	return c, nil
}

// config is where run's settings came from: the flags set on the command
// line (before the file's values were set as flags too), and the file,
// nil without one.
type config struct {
	cmdline map[string]bool
	file    *agentconfig.File
}

// adoption is what the file adopts, for the cluster and platform the
// file and the flags settled on; nil when it adopts nothing.
func adoption(c *config, cluster, plat, interval string, dryRun bool) (*platform.Adoption, error) {
	if c.file == nil {
		return nil, nil
	}
	a, err := c.file.Adoption(cluster, plat)
	if a != nil {
		a.Descriptor.Agent = &policy.Agent{Enabled: true, EvaluationInterval: interval, DryRun: dryRun}
	}
	return a, err
}

// printCheck prints, for `autarky-agent check-config`, every setting with
// where it came from, then what the file adopts with every default filled
// in. Token and webhook files are named, never their contents.
func printCheck(w io.Writer, fs *flag.FlagSet, c *config, a *platform.Adoption) error {
	f, set := c.file, c.cmdline
	fmt.Fprintln(w, "settings:")
	fs.VisitAll(func(fl *flag.Flag) {
		if fl.Name == "config" {
			return
		}
		from := "default"
		switch {
		case f != nil && f.Where(fl.Name) != "" && !set[fl.Name]:
			from = f.Where(fl.Name)
		case set[fl.Name] && f != nil && f.Where(fl.Name) != "":
			from = "flag, over " + f.Where(fl.Name)
		case set[fl.Name]:
			from = "flag"
		}
		fmt.Fprintf(w, "  --%s=%s\t(%s)\n", fl.Name, fl.Value.String(), from)
	})
	if a == nil {
		fmt.Fprintln(w, "adopts nothing: the agent serves the cluster Terraform built, from the platform's store")
		return nil
	}
	d := a.Descriptor
	fmt.Fprintf(w, "adopts cluster %q on platform %s (from %s):\n", d.Name, d.Platform, a.Source)
	healing := map[string]policy.Healing{}
	for _, h := range a.Healing {
		healing[h.PoolID] = h
	}
	scaling := map[string]policy.Scaling{}
	for _, s := range a.Scaling {
		scaling[s.PoolID] = s
	}
	for _, p := range a.Pools {
		group := a.Groups[p.Name]
		if group == "" {
			group = "the nodes whose engines carry autarky.cluster=" + d.Name + " and autarky.pool=" + p.Name
		}
		fmt.Fprintf(w, "  node_pool %q: role %s, min_size %d, max_size %d, desired_size %d, size owned by %s, labels %s\n    instances: %s\n",
			p.Name, p.Role, p.MinSize, p.MaxSize, p.DesiredSize, p.SizeOwner, labels(p.Labels), group)
		if h, ok := healing[p.ID()]; ok {
			fmt.Fprintf(w, "    healing_policy: enabled %t, unhealthy_after %s, join_timeout %s, min_node_age %s, max_unhealthy_percent %d, max_concurrent_replacements %d\n",
				h.Enabled, h.UnhealthyAfter, h.JoinTimeout, h.MinNodeAge, h.MaxUnhealthyPercent, h.MaxConcurrentReplacements)
		} else {
			fmt.Fprintln(w, "    healing_policy: none (failed nodes are not replaced)")
		}
		if s, ok := scaling[p.ID()]; ok {
			r, err := s.Rules()
			if err != nil {
				return err
			}
			lo, hi := r.Bounds(int(p.MinSize), int(p.MaxSize))
			fmt.Fprintf(w, "    scaling_policy: enabled %t, bounds [%d, %d], evaluation_interval %s, cooldown_up %s, cooldown_down %s, scale_in_after %s, max_step %d, drain_timeout %s, node_selector %s, provision_timeout %s, max_disrupted_percent %d, checks: %s\n",
				s.Enabled, lo, hi, r.EvaluationInterval, r.CooldownUp, r.CooldownDown, r.ScaleInAfter, r.MaxStep, r.DrainTimeout, r.NodeSelector, r.ProvisionTimeout, r.MaxDisruptedPercent, checkNames(r.PendingTasks, r.Prometheus, r.Alert))
		} else {
			fmt.Fprintln(w, "    scaling_policy: none (the size stays what it is: what exists, else desired_size)")
		}
	}
	for _, s := range a.Services {
		r, err := s.Rules()
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  service_scaling_policy %q: enabled %t, dry_run %t, replicas [%d, %d], max_step %d, cooldown_up %s, cooldown_down %s, checks: %s\n",
			s.Service, s.Enabled, s.DryRun, r.MinReplicas, r.MaxReplicas, r.MaxStep, r.CooldownUp, r.CooldownDown, checkNames(false, r.Prometheus, r.Alert))
	}
	return nil
}

func labels(m map[string]string) string {
	if len(m) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}

func checkNames(pending bool, prom []policy.PrometheusRule, alerts []policy.AlertRule) string {
	var out []string
	if pending {
		out = append(out, "pending_tasks")
	}
	for _, p := range prom {
		out = append(out, "prometheus "+p.Name)
	}
	for _, a := range alerts {
		out = append(out, "alert "+a.Name)
	}
	if len(out) == 0 {
		return "none (routed alerts only)"
	}
	return strings.Join(out, ", ")
}

// printSurvey prints, for check-config, what exists now of each pool the
// file adopts: its group (aws: desired, min and max), its nodes, and the
// size the agent would start from. It opens the platform as run does, to
// look only; a pool whose group does not exist is an error naming it.
func printSurvey(ctx context.Context, w io.Writer, plat string, s platform.AgentSettings) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	opened, err := platform.Open(ctx, plat, s)
	if err != nil {
		return err
	}
	sv, ok := opened.Cluster.(platform.Surveyor)
	if !ok {
		return fmt.Errorf("platform %s cannot tell what exists of an adopted cluster", plat)
	}
	pools, err := sv.Survey(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(w, "what exists now:")
	for _, p := range pools {
		fmt.Fprintf(w, "  node_pool %q:", p.Pool)
		if g := p.Group; g != nil {
			fmt.Fprintf(w, " %s %q desired %d", g.Kind, g.Name, g.Desired)
			if g.Bounded {
				fmt.Fprintf(w, ", min %d, max %d", g.Min, g.Max)
			}
			fmt.Fprint(w, ";")
		}
		var nodes []string
		for _, in := range p.Instances {
			state := "running"
			if !in.Running {
				state = "not running"
			}
			nodes = append(nodes, fmt.Sprintf("%s (%s, %s)", in.ID, cmp.Or(in.Addr, "no address yet"), state))
		}
		fmt.Fprintf(w, " %d instance(s)", len(nodes))
		if len(nodes) > 0 {
			fmt.Fprintf(w, ": %s", strings.Join(nodes, ", "))
		}
		fmt.Fprintf(w, "; the agent starts from size %d\n", p.Size)
	}
	return nil
}
