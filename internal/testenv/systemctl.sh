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
#                                `autarky-agent run ...`, its $VARIABLES
#                                taken from its EnvironmentFile and split
#                                at white space, as systemd does) under
#                                `autarky-agent supervise`, the agent's own
#                                supervisor, which keeps Restart=always with
#                                RestartSec and WatchdogSec as systemd does;
#                                as its User and Group with its
#                                SupplementaryGroups only, with
#                                NoNewPrivileges, an empty
#                                CapabilityBoundingSet and its UMask
#                                (setpriv, util-linux); for Type=notify it
#                                waits, as systemd does, until the agent
#                                sent READY=1 (the supervisor logs "child
#                                ready"), at most 90 s (systemd's default
#                                start timeout)
#
# The sandboxing settings that need systemd's own namespaces and seccomp
# (ProtectSystem, PrivateTmp, SystemCallFilter and the like: the list in
# restart_unit) are accepted as written and NOT carried out: the agent in a
# test host runs with more rights than under systemd. systemd's checker
# reads them (internal/packaging TestUnitVerify).
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
		Type | NotifyAccess | ExecStart | Restart | RestartSec | WatchdogSec | EnvironmentFile) ;;
		User | Group | SupplementaryGroups | NoNewPrivileges | CapabilityBoundingSet | UMask) ;;
		# Accepted, not carried out (see above).
		ProtectSystem | ProtectHome | PrivateTmp | PrivateDevices | PrivateMounts | ProtectKernelTunables | \
			ProtectKernelModules | ProtectKernelLogs | ProtectControlGroups | ProtectClock | ProtectHostname | \
			ProtectProc | ProcSubset | RestrictAddressFamilies | RestrictNamespaces | RestrictRealtime | \
			RestrictSUIDSGID | MemoryDenyWriteExecute | LockPersonality | RemoveIPC | SystemCallArchitectures | \
			SystemCallFilter | SystemCallErrorNumber) ;;
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
	env_file=$(unit_value "$unit" EnvironmentFile)
	[ -z "$env_file" ] || [ -f "$env_file" ] || {
		log "unit $1: EnvironmentFile $env_file does not exist"
		exit 1
	}
	# Split ExecStart into words, as systemd does, and a word $NAME into
	# the words of NAME's value in the EnvironmentFile.
	set -f
	words=
	for word in $exec_start; do
		case $word in
		\$*[!A-Za-z0-9_]* | \$) log "unit $1: only whole-word \$NAME is expanded here: $word" && exit 2 ;;
		\$*)
			[ -n "$env_file" ] || {
				log "unit $1: $word without an EnvironmentFile"
				exit 2
			}
			words="$words $(sed -n "s/^${word#\$}=//p" "$env_file" | tail -n 1)"
			;;
		*) words="$words $word" ;;
		esac
	done
	# shellcheck disable=SC2086 # split into words, as systemd does
	set -- $words
	set +f
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
	# The process's rights: setpriv becomes the unit's user, groups and
	# bounds, then runs the supervisor, which runs the agent.
	user=$(unit_value "$unit" User)
	priv=
	if [ -n "$user" ]; then
		group=$(unit_value "$unit" Group)
		groups=$(unit_value "$unit" SupplementaryGroups | tr ' ' ,)
		priv="setpriv --reuid $user --regid ${group:-$user} --clear-groups"
		[ -z "$groups" ] || priv="setpriv --reuid $user --regid ${group:-$user} --groups $groups"
	fi
	case $(unit_value "$unit" NoNewPrivileges) in
	'' | no) ;;
	yes) priv="${priv:-setpriv} --no-new-privs" ;;
	*) log "unit $1: NoNewPrivileges= takes yes or no here" && exit 2 ;;
	esac
	if grep -q '^CapabilityBoundingSet=' "$unit"; then
		[ -z "$(unit_value "$unit" CapabilityBoundingSet)" ] || {
			log "unit $1: only an empty CapabilityBoundingSet= is carried out"
			exit 2
		}
		priv="${priv:-setpriv} --bounding-set -all --inh-caps -all"
	fi
	umask_value=$(unit_value "$unit" UMask)
	# The supervisor's pid file and notify socket, in a directory the
	# unit's user owns (as systemd's RuntimeDirectory).
	run_dir=/run/$name
	mkdir -p "$run_dir"
	[ -z "$user" ] || chown "$user:${group:-$user}" "$run_dir"
	log=/var/log/$name.log
	start=1
	[ ! -f "$log" ] || start=$(($(wc -l <"$log") + 1))
	restart_sec=$(unit_value "$unit" RestartSec)
	watchdog=$(unit_value "$unit" WatchdogSec)
	(
		[ -z "$umask_value" ] || umask "$umask_value"
		# shellcheck disable=SC2086 # priv is words
		exec setsid $priv "$bin" supervise --restart-delay "${restart_sec:-0.1}s" --watchdog "${watchdog:-0}s" \
			--pid-file "$run_dir/$name.pid" --log-format json -- "$@" >>"$log" 2>&1 </dev/null
	) &
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
