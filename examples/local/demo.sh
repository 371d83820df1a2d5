#!/usr/bin/env bash
# make demo: apply this example (3 managers + a pool of 2 workers) on the
# local platform, show the swarm, and destroy it unless KEEP=1.
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

mkdir -p "$work"
cp "$here/main.tf" "$work/main.tf"
cat >"$work/terraformrc" <<RC
provider_installation {
  dev_overrides {
    "autarky/autarky" = "$BIN"
  }
  direct {}
}
RC
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1
cd "$work"

say "terraform apply: 3 managers and a pool of 2 workers, each a dockerd process (working in $work)"
start=$(date +%s%N)
"$TERRAFORM" apply -auto-approve -compact-warnings -no-color 2>&1 | grep -v -e '^ *$' -e 'Warning: Provider development overrides' -e 'The following provider' -e ' - autarky/autarky in' -e 'The behavior may therefore' -e 'to become incompatible' -e 'not be installed' -e 'Terraform CLI configuration file' -e '^[│╷╵]'
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

if [ "$KEEP" = 1 ]; then
	kept="kept running: DOCKER_HOST=$host docker node ls; destroy with: cd $work && TF_CLI_CONFIG_FILE=$work/terraformrc $TERRAFORM destroy"
else
	say "terraform destroy"
	"$TERRAFORM" destroy -auto-approve -no-color 2>&1 | grep -e 'Destroy complete' -e 'Error' || true
	left=$(pgrep -f "${AUTARKY_STATE_DIR:-/var/lib/autarky}/nodes/" | wc -l || true)
	kept="destroyed: $left node processes left"
fi

say "summary"
printf '  cluster        demo (local platform, 3 managers)\n'
printf '  node pool      web (2 workers, labels tier=web)\n'
printf '  swarm          %s nodes, %s Ready\n' "$nodes" "$ready"
printf '  apply time     %d.%03d s\n' $((apply_ms / 1000)) $((apply_ms % 1000))
printf '  docker host    %s\n' "$host"
printf '  cluster        %s\n' "$kept"
