#!/usr/bin/env bash
# make demo: apply this example (3 managers + a pool of 2 workers) on the
# local platform and show the swarm; then apply examples/healing, kill a
# worker and watch the agent replace it; then apply examples/adaptation,
# step a service's load and watch its replicas and then the nodes grow and
# shrink. Destroys everything unless KEEP=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
BIN="${BIN:?set BIN to the directory holding terraform-provider-autarky}"
TERRAFORM="${TERRAFORM:-}"
KEEP="${KEEP:-0}"
work="${AUTARKY_DEMO_DIR:-$HOME/.cache/autarky/demo}"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "the local platform starts dockerd processes: run make demo as root" >&2
	exit 1
fi

# The CLI: $TERRAFORM when set; else an installed Terraform (1.5 or newer)
# or OpenTofu (1.6 or newer) found on PATH; else the pinned Terraform,
# built once by $BUILD_TERRAFORM (about 5 minutes).
cli_version() { # the version a Terraform or OpenTofu binary reports, without the CLI config's warnings; fails when it reports none
	local v
	v="$(env -u TF_CLI_CONFIG_FILE "$1" version -json 2>/dev/null | grep -o '"terraform_version": *"[^"]*"' | grep -o '[0-9][0-9.]*' | head -1)"
	[ -n "$v" ] && echo "$v"
}
supported() { # supported NAME VERSION: Terraform >= 1.5, OpenTofu >= 1.6
	local major minor
	IFS=. read -r major minor _ <<<"$2"
	[ -n "$major" ] && [ -n "$minor" ] || return 1
	case "$1" in
	tofu) [ "$major" -gt 1 ] || { [ "$major" = 1 ] && [ "$minor" -ge 6 ]; } ;;
	*) [ "$major" -gt 1 ] || { [ "$major" = 1 ] && [ "$minor" -ge 5 ]; } ;;
	esac
}
if [ -n "$TERRAFORM" ] && ! version="$(cli_version "$TERRAFORM")"; then
	echo "DEMO_TERRAFORM=$TERRAFORM: not a Terraform or OpenTofu binary that runs (the demo needs Terraform 1.5 or newer, or OpenTofu 1.6 or newer)" >&2
	exit 1
fi
if [ -z "$TERRAFORM" ]; then
	for name in terraform tofu; do
		path="$(command -v "$name" || true)"
		[ -n "$path" ] || continue
		version="$(cli_version "$path" || true)"
		if supported "$name" "$version"; then
			TERRAFORM="$path"
			break
		fi
		echo "skipping $path: version ${version:-unknown}, the demo needs Terraform 1.5 or newer, or OpenTofu 1.6 or newer" >&2
	done
fi
if [ -z "$TERRAFORM" ]; then
	: "${BUILD_TERRAFORM:?no supported Terraform or OpenTofu on PATH: install one, or set TERRAFORM to its path}"
	echo ">> no supported Terraform or OpenTofu on PATH: building the pinned Terraform"
	TERRAFORM="$($BUILD_TERRAFORM)"
fi
printf 'using %s %s\n' "$TERRAFORM" "$(cli_version "$TERRAFORM")"

mkdir -p "$work/local" "$work/healing" "$work/adaptation"
cp "$here/main.tf" "$work/local/main.tf"
cp "$here/../healing/main.tf" "$work/healing/main.tf"
cp "$here/../adaptation/main.tf" "$work/adaptation/main.tf"
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "autarky/autarky" = "$BIN"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1
state_dir="${AUTARKY_STATE_DIR:-/var/lib/autarky}"
quiet() { grep -v -e '^ *$' -e 'Warning: Provider development overrides' -e 'The following provider' -e ' - autarky/autarky in' -e 'The behavior may therefore' -e 'to become incompatible' -e 'not be installed' -e 'Terraform CLI configuration file' -e '^[│╷╵]'; }
cd "$work/local"

say "terraform apply: 3 managers and a pool of 2 workers, each a dockerd process (working in $work)"
start=$(date +%s%N)
"$TERRAFORM" apply -auto-approve -compact-warnings -no-color 2>&1 | quiet
apply_ms=$((($(date +%s%N) - start) / 1000000))

host="$("$TERRAFORM" output -raw docker_host)"
say "docker -H $host node ls"
docker -H "$host" node ls

say "worker labels"
for id in $(docker -H "$host" node ls -q --filter role=worker); do
	docker -H "$host" node inspect "$id" --format '{{.Description.Hostname}}: {{json .Spec.Labels}}'
done

nodes=$(docker -H "$host" node ls -q | wc -l)
ready=$(docker -H "$host" node ls --format '{{.Status}}' | grep -c Ready || true)

say "terraform destroy"
"$TERRAFORM" destroy -auto-approve -no-color 2>&1 | grep -e 'Destroy complete' -e 'Error' || true

# Act two: the same cluster shape with agents beside the managers and
# healing policies (examples/healing). A worker is killed -9 behind
# Terraform's back and the agent on the Raft leader replaces it.
cd "$work/healing"
say "terraform apply of examples/healing: agents beside the managers, healing policies"
"$TERRAFORM" apply -auto-approve -compact-warnings -no-color 2>&1 | quiet | grep -e 'Creat' -e 'Apply complete'
host="$("$TERRAFORM" output -raw docker_host)"
agent_addr="$("$TERRAFORM" output -json agent_addresses | tr -d '[]"' | cut -d, -f1)"
victim="$(docker -H "$host" node ls --filter role=worker --format '{{.Hostname}}' | head -1)"
pid="$(grep -l "\"id\": \"$victim\"" "$state_dir"/nodes/*/instance.json | head -1 | xargs grep -o '"pid": [0-9]*' | grep -o '[0-9]*$')"
say "kill -9 the dockerd of worker $victim (pid $pid), as a machine failure would"
kill -9 "$pid"
heal_start=$(date +%s%N)
healed=0
for _ in $(seq 1 240); do
	sleep 0.25
	listed=$(docker -H "$host" node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null || true)
	if ! grep -q "^$victim " <<<"$listed" && [ "$(grep -c ' Ready$' <<<"$(grep -- '-web-' <<<"$listed")")" = 3 ]; then
		healed=1
		break
	fi
done
heal_ms=$((($(date +%s%N) - heal_start) / 1000000))
say "docker node ls after healing"
docker -H "$host" node ls
say "autarky-agent status --address $agent_addr"
"$BIN/autarky-agent" status --address "$agent_addr" | head -40 || true

say "terraform destroy"
"$TERRAFORM" destroy -auto-approve -no-color 2>&1 | grep -e 'Destroy complete' -e 'Error' || true

# Act three: adaptation (examples/adaptation). A workload's load gauge,
# scraped by a real Prometheus, sizes the service "web" (its
# autarky_service_scaling_policy); replicas that do not fit pend and grow
# the node pool (pending_tasks). A receiver records the agent's
# notifications.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }
secs() { printf '%d.%03d s' $(($1 / 1000)) $(($1 % 1000)); }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
cd "$work/adaptation"
rm -f "$work/notifications.log"
hook_port=$(free_port)
python3 - "$hook_port" "$work/notifications.log" <<'PY' &
import http.server, json, sys
log = open(sys.argv[2], "a", buffering=1)
class Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        log.write("%s %s: %s\n" % (body.get("kind"), body.get("name"), body.get("summary")))
        self.send_response(204); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Hook).serve_forever()
PY
pids+=($!)
load_addr="127.0.0.1:$(free_port)"
"$BIN/autarky-agent" workload --listen "$load_addr" --load 1 >/dev/null 2>&1 &
pids+=($!)
prom_addr="127.0.0.1:$(free_port)"
say "terraform apply of examples/adaptation: a service scaling policy and a node pool that grows for pending replicas"
AUTARKY_NOTIFY_WEBHOOK_URL="http://127.0.0.1:$hook_port/hook" "$TERRAFORM" apply -auto-approve -compact-warnings -no-color \
	-var "prometheus_address=http://$prom_addr" -var "workload_binary=$BIN/autarky-agent" 2>&1 | quiet | grep -e 'Creat' -e 'Apply complete'
host="$("$TERRAFORM" output -raw docker_host)"
agent_addr="$("$TERRAFORM" output -json agent_addresses | tr -d '[]"' | cut -d, -f1)"
rm -rf "$work/prometheus"
mkdir -p "$work/prometheus"
cat >"$work/prometheus/prometheus.yml" <<PROM
global: { scrape_interval: 1s }
scrape_configs:
  - job_name: workload
    static_configs: [{ targets: ["$load_addr"] }]
  - job_name: autarky
    static_configs: [{ targets: ["${agent_addr#http://}"] }]
PROM
prometheus --config.file="$work/prometheus/prometheus.yml" --web.listen-address="$prom_addr" \
	--storage.tsdb.path="$work/prometheus/data" >"$work/prometheus/log" 2>&1 &
pids+=($!)
ncpu=$(docker -H "$host" info --format '{{.NCPU}}')
reserve=$(python3 -c "print('%.2f' % ($ncpu / 2 - 0.1))")
say "docker service create web: each replica reserves $reserve of the nodes' $ncpu CPUs, so two fit on a node"
docker -H "$host" service create --detach --quiet --name web --replicas 1 --reserve-cpu "$reserve" \
	--constraint node.labels.tier==web --stop-grace-period 1s autarky/workload:latest >/dev/null
running() { docker -H "$host" service ps web --filter desired-state=running --format '{{.CurrentState}}' 2>/dev/null | grep -c '^Running' || true; }
web_ready() { docker -H "$host" node ls --format '{{.Hostname}} {{.Status}}' 2>/dev/null | grep -- '-web-' | grep -c ' Ready$' || true; }
web_nodes() { docker -H "$host" node ls --format '{{.Hostname}}' 2>/dev/null | grep -c -- '-web-' || true; }
wait_until() { # wait_until SECONDS CONDITION...: poll every 0.1 s
	local until=$(($(date +%s) + $1)); shift
	while ! "$@"; do
		[ "$(date +%s)" -lt "$until" ] || return 1
		sleep 0.1
	done
}
is() { [ "$("$1")" -ge "$2" ]; }
is_only() { [ "$("$1")" = "$2" ]; }
adapted=0
# At rest: one replica running and its check trusted (Prometheus has
# scraped both the workload and the agent), so the step measures the
# reaction, not Prometheus warming up.
at_rest() { "$BIN/autarky-agent" status --address "$agent_addr" 2>/dev/null | grep -q '^service web (.*(within_target)'; }
if wait_until 120 is running 1 && wait_until 60 at_rest; then
	say "load step: the workload's gauge goes from 1 to 5 replicas' worth"
	curl -fsS -X PUT --data 5 "http://$load_addr/load"
	step=$(date +%s%N)
	# What the agent says of the service meanwhile, for a slow reaction.
	(while sleep 2; do printf '%s ' "$(date +%T)"; "$BIN/autarky-agent" status --address "$agent_addr" 2>&1 | grep -m1 '^service web'; done) >"$work/adaptation-status.log" 2>&1 &
	pids+=($!)
	wait_until 120 is running 2 && replica_ms=$(ms_since "$step")
	wait_until 180 is web_ready 2 && node_ms=$(ms_since "$step")
	wait_until 240 is running 5 && all_ms=$(ms_since "$step")
	docker -H "$host" service ps web --format '{{.Name}} {{.Node}} {{.CurrentState}}' | grep Running || true
	say "load drop: back to 1 replica's worth"
	curl -fsS -X PUT --data 1 "http://$load_addr/load"
	drop=$(date +%s%N)
	if wait_until 300 is_only web_nodes 1 && wait_until 60 is_only running 1; then
		min_ms=$(ms_since "$drop")
		adapted=1
	fi
	lost=$(docker -H "$host" service ps web --format '{{.CurrentState}} {{.Error}}' | grep -c -e Failed -e Rejected -e Orphaned || true)
fi
say "autarky-agent status --address $agent_addr"
"$BIN/autarky-agent" status --address "$agent_addr" | head -30 || true

if [ "$KEEP" = 1 ]; then
	kept="kept running: DOCKER_HOST=$host docker node ls; destroy with: cd $work/adaptation && TF_CLI_CONFIG_FILE=$work/terraformrc $TERRAFORM destroy -var workload_binary=$BIN/autarky-agent"
else
	say "terraform destroy"
	docker -H "$host" service rm web >/dev/null 2>&1 || true
	"$TERRAFORM" destroy -auto-approve -no-color -var "prometheus_address=http://$prom_addr" -var "workload_binary=$BIN/autarky-agent" 2>&1 | grep -e 'Destroy complete' -e 'Error' || true
	left=$(pgrep -f "$state_dir/nodes/" | wc -l || true)
	kept="destroyed: $left node processes left"
fi

say "summary"
printf '  act one        examples/local: 3 managers + pool web of 2 workers, %s nodes (%s Ready)\n' "$nodes" "$ready"
printf '  apply time     %d.%03d s\n' $((apply_ms / 1000)) $((apply_ms % 1000))
printf '  act two        examples/healing: worker %s killed -9\n' "$victim"
if [ "$healed" = 1 ]; then
	printf '  healed in      %d.%03d s (Swarm Down detection + unhealthy_after 5s + one node boot)\n' $((heal_ms / 1000)) $((heal_ms % 1000))
else
	printf '  NOT HEALED     within 60 s: see %s/nodes/*/agent.log\n' "$state_dir"
fi
printf '  act three      examples/adaptation: the load of service web steps from 1 to 5 replicas and back\n'
if [ "$adapted" = 1 ]; then
	printf '  load step ->   first new replica running %s, first new node Ready %s, all 5 replicas running %s\n' "$(secs "${replica_ms:-0}")" "$(secs "${node_ms:-0}")" "$(secs "${all_ms:-0}")"
	printf '  load drop ->   pool back at its minimum of 1 node, 1 replica: %s; tasks lost: %s\n' "$(secs "$min_ms")" "$lost"
else
	printf '  NOT ADAPTED    see %s/nodes/*/agent.log and autarky-agent status\n' "$state_dir"
fi
printf '  notifications  %s received:\n' "$(wc -l <"$work/notifications.log" 2>/dev/null || echo 0)"
sed 's/^/                 /' "$work/notifications.log" 2>/dev/null || true
printf '  cluster        %s\n' "$kept"
[ "$healed" = 1 ] && [ "$adapted" = 1 ]
