#!/usr/bin/env bash
# make demo: apply this example (3 managers + a pool of 2 workers) on the
# local platform and show the swarm; then apply examples/healing, kill a
# worker and watch the agent replace it. Destroys everything unless KEEP=1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
BIN="${BIN:?set BIN to the directory holding terraform-provider-autarky}"
TERRAFORM="${TERRAFORM:-terraform}"
KEEP="${KEEP:-0}"
work="${AUTARKY_DEMO_DIR:-$HOME/.cache/autarky/demo}"

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

if [ "$(id -u)" != 0 ]; then
	echo "the local platform starts dockerd processes: run make demo as root" >&2
	exit 1
fi

mkdir -p "$work/local" "$work/healing"
cp "$here/main.tf" "$work/local/main.tf"
cp "$here/../healing/main.tf" "$work/healing/main.tf"
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

if [ "$KEEP" = 1 ]; then
	kept="kept running: DOCKER_HOST=$host docker node ls; destroy with: cd $work/healing && TF_CLI_CONFIG_FILE=$work/terraformrc $TERRAFORM destroy"
else
	say "terraform destroy"
	"$TERRAFORM" destroy -auto-approve -no-color 2>&1 | grep -e 'Destroy complete' -e 'Error' || true
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
printf '  cluster        %s\n' "$kept"
[ "$healed" = 1 ]
