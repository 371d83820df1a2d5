// Package agentconfig reads the standalone agent's configuration file
// (`autarky-agent run --config FILE`), written in HCL.
//
// The file holds two things:
//
//   - the agent's settings, the same as `autarky-agent run`'s flags, by
//     the flag's name with '_' for '-' (evaluation_interval), the
//     platform's and the notifications' grouped in blocks (local, aws,
//     gcp, notify). A flag given on the command line overrides the file:
//     the file's values become the flags' values, except for the flags
//     actually set (Apply), so every setting is checked by one rule
//     whichever way it came;
//   - optionally, an adopt block: a cluster Terraform did not build,
//     declared here instead. Its node_pool blocks name the pools (an
//     existing Auto Scaling Group on aws; on local, the nodes whose
//     engines carry the pool's labels, see the local platform's package
//     doc), each with its healing_policy and scaling_policy, and its
//     service_scaling_policy blocks size services. They have the fields,
//     defaults and validation of the Terraform resources
//     (autarky_node_pool, autarky_healing_policy, autarky_scaling_policy,
//     autarky_service_scaling_policy): the file is decoded into policy's
//     types, filled with policy's defaults and checked by policy's
//     validators, so there is one set of rules, not a second copy here.
//
// Who owns what: an adopted cluster's pools and policies are the file's,
// and only the file's. The agent serves them from the file
// (platform.Adopt) and writes none of them into the platform's store, so
// the store never holds a configuration Terraform did not write; the
// platform still keeps the agent's journal and lists the instances. An
// agent told to adopt a cluster that Terraform built (its store holds a
// descriptor) refuses to start: two owners of one pool would fight.
//
// Every error names the file, the line and the field, and what is
// allowed: HCL's own diagnostics for the syntax, unknown names and wrong
// types, and the policy validators' messages placed at the attribute they
// name.
package agentconfig

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"

	"github.com/autarky/terraform-provider-autarky/internal/agent"
	"github.com/autarky/terraform-provider-autarky/internal/notify"
	"github.com/autarky/terraform-provider-autarky/internal/platform"
	"github.com/autarky/terraform-provider-autarky/internal/policy"
)

// File is a configuration file, read and checked.
type File struct {
	// Path is the file's name, as given.
	Path string
	// Flags are the settings the file gives, by the name of the run flag
	// they set, in the flag's syntax ("true", "2s").
	Flags map[string]string
	// where is the range of each setting in Flags, for messages.
	where map[string]hcl.Range

	adopt *adoption
}

// adoption is the adopt block, checked with a placeholder cluster name
// until the cluster's name (the file's or the flag's) is known.
type adoption struct {
	defRange hcl.Range
	pools    []adoptedPool
	services []policy.ServiceScaling
}

type adoptedPool struct {
	pool       policy.Pool
	group      string
	groupRange hcl.Range
	defRange   hcl.Range
	healing    *policy.Healing
	scaling    *policy.Scaling
}

// checkName stands in for the cluster's name while the file's policies
// are checked: policy validates a pool id's halves each as a DNS label, so
// any valid name gives the same verdict on the rest.
const checkName = "cluster"

// Load reads and checks file. Its error is hcl.Diagnostics (each naming
// the file, line and field) or the error reading the file.
func Load(path string) (*File, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return Parse(path, src)
}

// Parse checks src as the file named path.
func Parse(path string, src []byte) (*File, error) {
	hf, diags := hclparse.NewParser().ParseHCL(src, path)
	if diags.HasErrors() {
		return nil, Error(diags)
	}
	var s fileSchema
	if diags := gohcl.DecodeBody(hf.Body, nil, &s); diags.HasErrors() {
		return nil, Error(nameFields(diags, hf.Body))
	}
	f := &File{Path: path, Flags: map[string]string{}, where: map[string]hcl.Range{}}
	var d diagnostics
	f.settings(&s, &d)
	if s.Adopt != nil {
		f.adopt = d.adoption(s.Adopt)
	}
	if len(d) > 0 {
		return nil, Error(d)
	}
	return f, nil
}

// settings turns the agent's settings into flag values, checking each with
// the rule its flag is checked by.
func (f *File) settings(s *fileSchema, d *diagnostics) {
	top := s.Body
	f.str(d, top, "cluster", "cluster", s.Cluster, policy.ValidateName)
	f.str(d, top, "platform", "platform", s.Platform, policy.ValidatePlatform)
	f.str(d, top, "docker_host", "docker-host", s.DockerHost, agent.ValidateDockerHost)
	f.str(d, top, "listen", "listen", s.Listen, nil)
	if s.DryRun != nil {
		f.set("dry-run", strconv.FormatBool(*s.DryRun), attrRange(top, "dry_run"))
	}
	f.str(d, top, "evaluation_interval", "evaluation-interval", s.EvaluationInterval, func(v string) error {
		_, err := policy.ParseEvaluationInterval(v)
		return err
	})
	f.str(d, top, "drain_timeout", "drain-timeout", s.DrainTimeout, positive)
	f.str(d, top, "log_format", "log-format", s.LogFormat, func(v string) error {
		if v != "json" && v != "text" {
			return fmt.Errorf("%q is not allowed: use \"json\" or \"text\"", v)
		}
		return nil
	})
	f.str(d, top, "alert_token_file", "alert-token-file", s.AlertTokenFile, nil)
	f.str(d, top, "status_token_file", "status-token-file", s.StatusTokenFile, nil)

	plat := policy.PlatformLocal
	if s.Platform != nil {
		plat = *s.Platform
	}
	// A block of another platform than the file's is a mistake (a copied
	// file half edited); a flag may still change the platform, and the
	// platform then refuses the settings that are not its own.
	for _, b := range []struct {
		name  string
		set   bool
		where func() hcl.Range
	}{
		{policy.PlatformLocal, s.Local != nil, func() hcl.Range { return s.Local.DefRange }},
		{policy.PlatformAWS, s.AWS != nil, func() hcl.Range { return s.AWS.DefRange }},
		{policy.PlatformGCP, s.GCP != nil, func() hcl.Range { return s.GCP.DefRange }},
	} {
		if b.set && b.name != plat {
			r := b.where()
			d.add(&r, "Block of another platform", fmt.Sprintf("The %s block holds settings of platform %q, but the file's platform is %q: remove the block, or set platform = %q.", b.name, b.name, plat, b.name))
		}
	}
	if s.Local != nil {
		f.str(d, s.Local.Body, "state_dir", "state-dir", s.Local.StateDir, policy.ValidateStateDir)
	}
	if s.AWS != nil {
		f.str(d, s.AWS.Body, "region", "region", s.AWS.Region, policy.ValidateAWSRegion)
	}
	if g := s.GCP; g != nil {
		f.str(d, g.Body, "project", "project", g.Project, nil)
		f.str(d, g.Body, "region", "region", g.Region, nil)
		f.str(d, g.Body, "bucket", "bucket", g.Bucket, nil)
		f.str(d, g.Body, "compute_endpoint", "compute-endpoint", g.ComputeEndpoint, nil)
		f.str(d, g.Body, "storage_endpoint", "storage-endpoint", g.StorageEndpoint, nil)
	}
	if n := s.Notify; n != nil {
		f.str(d, n.Body, "webhook_file", "notify-webhook-file", n.WebhookFile, nil)
		f.str(d, n.Body, "format", "notify-format", n.Format, func(v string) error {
			_, err := notify.ParseFormat("format", v)
			return err
		})
		f.str(d, n.Body, "stale_after", "notify-stale-after", n.StaleAfter, positive)
		f.str(d, n.Body, "resolve_after", "notify-resolve-after", n.ResolveAfter, func(v string) error {
			_, err := policy.ParseDuration(v)
			return err
		})
	}
}

// positive accepts a duration above zero.
func positive(v string) error {
	d, err := policy.ParseDuration(v)
	if err == nil && d <= 0 {
		err = fmt.Errorf("%q is not allowed: use a duration above zero, such as \"30s\" or \"2m\"", v)
	}
	return err
}

// str records a string setting for flag, checked by check.
func (f *File) str(d *diagnostics, body hcl.Body, attr, flag string, v *string, check func(string) error) {
	if v == nil {
		return
	}
	r := attrRange(body, attr)
	if check != nil {
		if err := check(*v); err != nil {
			d.add(&r, "Invalid "+attr, trimField(err.Error(), attr))
			return
		}
	}
	f.set(flag, *v, r)
}

func (f *File) set(flag, v string, r hcl.Range) {
	f.Flags[flag] = v
	f.where[flag] = r
}

// Where is the place in the file of the setting for flag ("" when the file
// does not set it), for messages about a value refused later.
func (f *File) Where(flag string) string {
	r, ok := f.where[flag]
	if !ok {
		return ""
	}
	return fmt.Sprintf("%s:%d", r.Filename, r.Start.Line)
}

// Adopts reports whether the file has an adopt block.
func (f *File) Adopts() bool { return f.adopt != nil }

// Adoption is the adopt block for cluster on platform plat (either may
// come from a flag rather than the file), nil without an adopt block. It
// refuses what plat cannot adopt, naming the file and line.
func (f *File) Adoption(cluster, plat string) (*platform.Adoption, error) {
	if f.adopt == nil {
		return nil, nil
	}
	var d diagnostics
	// ManagerCount is not the swarm's: an adopted cluster's managers are
	// not Autarky's (platform.Adopt lists and starts no instance of
	// them), so the manager pool the agent derives from it never acts.
	a := &platform.Adoption{Source: f.Path, Groups: map[string]string{},
		Descriptor: policy.Cluster{Name: cluster, Platform: plat, ManagerCount: 1,
			HeartbeatPeriod: policy.DefaultHeartbeatPeriod.String()}}
	switch plat {
	case policy.PlatformLocal, policy.PlatformAWS:
	default:
		r := f.adopt.defRange
		d.add(&r, "Adoption not supported", fmt.Sprintf("Adopting a cluster is supported on platforms \"local\" and \"aws\", not %q.", plat))
	}
	for _, p := range f.adopt.pools {
		pool := p.pool
		pool.Cluster = cluster
		if p.group != "" {
			if plat != policy.PlatformAWS {
				r := p.groupRange
				d.add(&r, "Invalid group", fmt.Sprintf("group names the Auto Scaling Group of an adopted pool on platform \"aws\"; on %q leave it out (see the platform's documentation for how its nodes are adopted).", plat))
			}
			a.Groups[pool.Name] = p.group
		} else if plat == policy.PlatformAWS {
			r := p.defRange
			d.add(&r, "Missing group", fmt.Sprintf("node_pool %q: on platform \"aws\" an adopted pool names its existing Auto Scaling Group: add group = \"<the group's name>\".", pool.Name))
		}
		a.Pools = append(a.Pools, pool)
		if p.healing != nil {
			h := *p.healing
			h.PoolID = pool.ID()
			a.Healing = append(a.Healing, h)
		}
		if p.scaling != nil {
			s := *p.scaling
			s.PoolID = pool.ID()
			a.Scaling = append(a.Scaling, s)
		}
	}
	for _, s := range f.adopt.services {
		s.ClusterID = cluster
		a.Services = append(a.Services, s)
	}
	if len(d) > 0 {
		return nil, Error(d)
	}
	return a, nil
}

// diagnostics collects the errors of a file, each at its place.
type diagnostics hcl.Diagnostics

func (d *diagnostics) add(r *hcl.Range, summary, detail string) {
	*d = append(*d, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: r})
}

// attrRange is where attribute name's value is in body, else the body's
// own range (for a value the file left to its default).
func attrRange(body hcl.Body, name string) hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[name]; ok {
			return a.Expr.Range()
		}
		return sb.SrcRange
	}
	return hcl.Range{}
}

// trimField drops a leading "field: " from a validator's message when the
// diagnostic names the field already.
func trimField(msg, field string) string {
	return strings.TrimPrefix(msg, field+": ")
}

// fieldRE reads the field a policy validator's message starts with:
// "max_step: ...", "min_size (3) is greater ...", "prometheus[1].query: ...".
var fieldRE = regexp.MustCompile(`^([a-z_]+)(?:\[(\d+)\])?(?:\.([a-z_]+))?`)

// placeOf finds where the field a policy's error names is in a block:
// the attribute of the block, or of its n-th nested block; the block's
// definition when the file leaves the field to its default.
func placeOf(msg string, body hcl.Body, def hcl.Range, nested map[string][]hcl.Body) (hcl.Range, string) {
	m := fieldRE.FindStringSubmatch(msg)
	if m == nil {
		return def, ""
	}
	if m[2] != "" {
		i, _ := strconv.Atoi(m[2])
		if blocks := nested[m[1]]; i < len(blocks) {
			if m[3] != "" {
				return attrRange(blocks[i], m[3]), m[1] + "[" + m[2] + "]." + m[3]
			}
			return attrRange(blocks[i], "name"), m[1] + "[" + m[2] + "]"
		}
		return def, m[1]
	}
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[m[1]]; ok {
			return a.Expr.Range(), m[1]
		}
	}
	return def, m[1]
}

// Error is a file's diagnostics: every one, each on its own line as
// "file:line,column: summary: what is allowed".
type Error hcl.Diagnostics

func (e Error) Error() string {
	var b strings.Builder
	for i, d := range e {
		if i > 0 {
			b.WriteString("\n")
		}
		if d.Subject != nil {
			fmt.Fprintf(&b, "%s:%d,%d: ", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
		}
		b.WriteString(d.Summary)
		if d.Detail != "" {
			b.WriteString(": " + d.Detail)
		}
	}
	return b.String()
}

// nameFields puts the name of the attribute a decoding error is about
// into its summary ("Unsuitable value type for dry_run"): HCL's own
// message says what is wrong and where, not which setting. To an unknown
// name it adds what the block takes.
func nameFields(diags hcl.Diagnostics, body hcl.Body) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return diags
	}
	for _, d := range diags {
		if d.Subject == nil {
			continue
		}
		if d.Summary == "Unsupported argument" || d.Summary == "Unsupported block type" {
			// HCL names the unknown name; say what the block takes.
			if allowed := allowedIn(blockAt(sb, d.Subject.Start, "")); allowed != "" {
				d.Detail += " Allowed here: " + allowed + "."
			}
			continue
		}
		if name := attrAt(sb, d.Subject.Start); name != "" {
			d.Summary += " for " + name
		}
	}
	return diags
}

// schemas are the file's blocks' shapes, by block type ("" the file's top).
var schemas = map[string]any{
	"": fileSchema{}, "local": localBlock{}, "aws": awsBlock{}, "gcp": gcpBlock{}, "notify": notifyBlock{},
	"adopt": adoptBlock{}, "node_pool": nodePoolBlock{}, "healing_policy": healingBlock{}, "scaling_policy": scalingBlock{},
	"pending_tasks": pendingTasksBlock{}, "prometheus": prometheusBlock{}, "alert": alertBlock{},
	"service_scaling_policy": serviceScalingBlock{},
}

// allowedIn lists the attributes and blocks of block type typ, for a
// name that is not one of them.
func allowedIn(typ string) string {
	v, ok := schemas[typ]
	if !ok {
		return ""
	}
	schema, _ := gohcl.ImpliedBodySchema(v)
	var names []string
	for _, a := range schema.Attributes {
		names = append(names, a.Name)
	}
	for _, b := range schema.Blocks {
		names = append(names, b.Type+" {}")
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// blockAt is the type of the innermost block holding pos, outer for none.
func blockAt(b *hclsyntax.Body, pos hcl.Pos, outer string) string {
	for _, blk := range b.Blocks {
		if blk.Body != nil && blk.Body.SrcRange.ContainsOffset(pos.Byte) {
			return blockAt(blk.Body, pos, blk.Type)
		}
	}
	return outer
}

// attrAt is the dotted path of the attribute whose value holds pos
// ("adopt.node_pool.workers.max_size"), "" when none does.
func attrAt(b *hclsyntax.Body, pos hcl.Pos) string {
	for name, a := range b.Attributes {
		if a.SrcRange.ContainsOffset(pos.Byte) {
			return name
		}
	}
	for _, blk := range b.Blocks {
		if blk.Body != nil && blk.Body.SrcRange.ContainsOffset(pos.Byte) {
			if inner := attrAt(blk.Body, pos); inner != "" {
				return strings.Join(append(append([]string{blk.Type}, blk.Labels...), inner), ".")
			}
		}
	}
	return ""
}
