#!/bin/sh
# systemctl STAND-IN for test hosts (internal/testenv TestHost). It is not
# systemd and does not pretend to be: a test host is a network, mount and
# UTS namespace on the test machine, whose PID 1 is the machine's, so there
# is no systemd of its own to start units in it. Only systemd and package
# installation are stood in for when the tests run the real boot script;
# everything else (dockerd, docker, curl, the AWS CLI, autarky-agent) is
# the real program. This script knows the verbs the boot script runs and
# refuses any other (exit 2), so a new use of systemd in the script fails
# the test instead of passing unnoticed:
#
#   daemon-reload, enable UNIT   nothing to do: units here are read when
#                                they start, and a "reboot" of a test host
#                                reruns the boot script, which restarts them
#   restart docker               stops the host's dockerd (SIGTERM, as
#                                systemd stops docker.service, waiting for
#                                it to exit) and starts /usr/sbin/dockerd in
#                                the background with Debian's defaults but
#                                for its socket: on /var/run/docker.sock
#                                instead of socket activation (-H fd://),
#                                and its own managed containerd (the host
#                                has no containerd.service)
#   restart NAME.service         a unit file the script wrote under
#                                /etc/systemd/system: runs its ExecStart (an
#                                `autarky-agent run ...`) under
#                                `autarky-agent supervise`, the agent's own
#                                supervisor, which keeps Restart=always with
#                                RestartSec and WatchdogSec as systemd does;
#                                for Type=notify it waits, as systemd does,
#                                until the agent sent READY=1 (the
#                                supervisor logs "child ready"), at most
#                                90 s (systemd's default start timeout)
#
# The environment passes through to what it starts (systemd would give a
# clean one): the test host's AWS endpoint and test credentials reach the
# agent that way, where an instance's agent uses the instance role.
# Output goes to /var/log/<unit>.log inside the host.
set -eu

log() { printf 'systemctl (test stand-in): %s\n' "$*" >&2; }

# stop_pid stops the process whose pid is in file $1: SIGTERM, then
# SIGKILL after $2 seconds.
stop_pid() {
	[ -s "$1" ] || return 0
	pid=$(cat "$1")
	if kill -TERM "$pid" 2>/dev/null; then
		waited=0
		while kill -0 "$pid" 2>/dev/null; do
			waited=$((waited + 1))
			if [ "$waited" -gt $(($2 * 10)) ]; then
				kill -KILL "$pid" 2>/dev/null || true
				break
			fi
			sleep 0.1
		done
	fi
	rm -f "$1"
}

restart_docker() {
	stop_pid /var/run/docker.pid 30
	setsid /usr/sbin/dockerd >>/var/log/docker.log 2>&1 </dev/null &
}

# unit_value prints the value of key $2 in unit file $1 (the last one).
unit_value() {
	sed -n "s/^$2=//p" "$1" | tail -n 1
}

restart_unit() {
	unit=/etc/systemd/system/$1
	[ -f "$unit" ] || {
		log "unit $1 not found in /etc/systemd/system"
		exit 5
	}
	# Refuse the [Service] settings this stand-in does not carry out.
	sed -n '/^\[Service\]/,/^\[/{/^[A-Za-z]/s/=.*//p}' "$unit" | while read -r key; do
		case $key in
		Type | NotifyAccess | ExecStart | Restart | RestartSec | WatchdogSec) ;;
		*)
			log "unit $1: $key= is not carried out by this stand-in: teach it (internal/testenv/systemctl.sh)"
			exit 2
			;;
		esac
	done || exit 2
	exec_start=$(unit_value "$unit" ExecStart)
	case $exec_start in
	*[\"\'\\]*)
		log "unit $1: ExecStart with quotes is not carried out by this stand-in"
		exit 2
		;;
	esac
	# shellcheck disable=SC2086 # split ExecStart into words, as systemd does
	set -- $exec_start
	bin=$1
	shift
	[ "${1:-}" = run ] || {
		log "unit $1: ExecStart is not an autarky-agent run: this stand-in supervises only that"
		exit 2
	}
	[ "$(unit_value "$unit" Restart)" = always ] || {
		log "unit $1: only Restart=always is carried out"
		exit 2
	}
	name=${unit##*/}
	name=${name%.service}
	stop_pid "/run/$name.supervise.pid" 30
	log=/var/log/$name.log
	start=1
	[ ! -f "$log" ] || start=$(($(wc -l <"$log") + 1))
	restart_sec=$(unit_value "$unit" RestartSec)
	watchdog=$(unit_value "$unit" WatchdogSec)
	setsid "$bin" supervise --restart-delay "${restart_sec:-0.1}s" --watchdog "${watchdog:-0}s" \
		--pid-file "/run/$name.pid" --log-format json -- "$@" >>"$log" 2>&1 </dev/null &
	echo $! >"/run/$name.supervise.pid"
	[ "$(unit_value "$unit" Type)" = notify ] || return 0
	waited=0
	until tail -n "+$start" "$log" | grep -q '"@message":"child ready"'; do
		waited=$((waited + 1))
		if [ "$waited" -gt 900 ]; then
			log "$1 sent no READY=1 within 90s"
			exit 1
		fi
		sleep 0.1
	done
}

[ $# -ge 1 ] || {
	log "no verb"
	exit 2
}
verb=$1
shift
case $verb in
daemon-reload) ;;
enable)
	[ $# -ge 1 ] || exit 2
	;;
restart)
	[ $# -eq 1 ] || {
		log "restart takes one unit here"
		exit 2
	}
	case $1 in
	docker | docker.service) restart_docker ;;
	*.service) restart_unit "$1" ;;
	*) restart_unit "$1.service" ;;
	esac
	;;
*)
	log "$verb is not carried out by this stand-in"
	exit 2
	;;
esac
