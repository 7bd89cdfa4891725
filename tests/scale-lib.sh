# tests/scale-lib.sh: lso hosts behind HAProxy in network namespaces, for
# tests/scale.sh and bench/scale.sh (sourced; bash).
#
# One namespace holds a bridge; every other one (a host, the edge, the
# client) gets a veth whose peer is on that bridge, and one address on
# 10.218.18.0/24. Nothing is added to the namespace the script runs in but
# the namespaces themselves; scale_cleanup removes them and everything that
# ran in them. Before sourcing, set SCALE_DIR (an empty directory), LSO (the
# binary) and SCALE_TOP (the repository).

SCALE_NET=10.218.18
SCALE_PREFIX=lsoscale$$
SCALE_EDGE=$SCALE_NET.10
SCALE_CLIENT=$SCALE_NET.100
SCALE_PORT=44444
SCALE_NS=()
SCALE_CGROUPS=()
SCALE_HAPROXY_PID=

scale_host_address() { echo "$SCALE_NET.1$1"; }   # host 1: .11
scale_ns() { echo "$SCALE_PREFIX-$1"; }
scale_in() { local ns; ns=$(scale_ns "$1"); shift; ip netns exec "$ns" "$@"; }

# scale_add_ns NAME ADDRESS: a namespace with lo, and eth0 on the bridge.
scale_add_ns() {
	local ns sw
	ns=$(scale_ns "$1")
	sw=$(scale_ns sw)
	ip netns add "$ns" || return 1
	SCALE_NS+=("$ns")
	ip -n "$ns" link set lo up &&
		ip -n "$sw" link add "v-$1" type veth peer name eth0 netns "$ns" &&
		ip -n "$sw" link set "v-$1" master br0 up &&
		ip -n "$ns" addr add "$2/24" dev eth0 &&
		ip -n "$ns" link set eth0 up
}

# scale_network N: the bridge, N hosts, the edge and the client.
scale_network() {
	local sw
	sw=$(scale_ns sw)
	ip netns add "$sw" || return 1
	SCALE_NS+=("$sw")
	ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up || return 1
	for i in $(seq "$1"); do
		scale_add_ns "h$i" "$(scale_host_address "$i")" || return 1
	done
	scale_add_ns edge "$SCALE_EDGE" && scale_add_ns client "$SCALE_CLIENT"
}

# scale_kill_ns NAME: SIGKILL to every process in the namespace (a host
# that crashed), bounded wait until none is left.
scale_kill_ns() {
	local ns pids
	ns=$(scale_ns "$1")
	for _ in $(seq 50); do
		pids=$(ip netns pids "$ns" 2>/dev/null)
		[ -n "$pids" ] || return 0
		# shellcheck disable=SC2086
		kill -9 $pids 2>/dev/null
		sleep 0.1
	done
	return 1
}

scale_cleanup() {
	local ns
	for ns in "${SCALE_NS[@]}"; do
		scale_kill_ns "${ns#"$SCALE_PREFIX"-}"
	done
	for ns in "${SCALE_NS[@]}"; do
		ip netns del "$ns" 2>/dev/null
	done
	SCALE_NS=()
	# A cgroup goes once its last killed process is gone (bounded).
	for cg in "${SCALE_CGROUPS[@]}"; do
		for _ in $(seq 50); do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
	done
	SCALE_CGROUPS=()
}

# scale_cpu_limit NAME PERCENT: a cgroup (v1 cpu controller) holding at most
# PERCENT of one core; SCALE_TASKS is its tasks file (fails without one).
scale_cpu_limit() {
	local cg=/sys/fs/cgroup/cpu/$SCALE_PREFIX-$1
	SCALE_TASKS=
	[ -d /sys/fs/cgroup/cpu ] || return 1
	mkdir -p "$cg" && SCALE_CGROUPS+=("$cg") &&
		echo 100000 >"$cg/cpu.cfs_period_us" &&
		echo $(($2 * 1000)) >"$cg/cpu.cfs_quota_us" && SCALE_TASKS=$cg/tasks
}

# scale_host_env I: the settings of host I (tag 0I, its own state, files and
# the test's programs), one VAR=VALUE a line.
scale_host_env() {
	printf '%s\n' "PATH=/usr/local/bin:/usr/bin:/bin" "LSO_HOST_TAG=0$1" \
		"LSO_STATE_DIR=$SCALE_DIR/h$1/state" "JOB_FILES_ROOT_DIR=$SCALE_DIR/h$1/files" \
		"EXECUTABLES_ROOT_DIR=$SCALE_DIR/programs" "LSO_IDLE_EXIT_SEC=0" \
		"LSO_CALLBACK_RETRIES=3" "MAX_THREAD_POOL_WORKERS=16" \
		${SCALE_KEY:+"LSO_OAUTH2_ACTIVE=true" "LSO_API_KEY=$SCALE_KEY"}
}

# scale_start_host I [TASKS]: lso in burst mode on host I's address, started
# by systemd-socket-activate in its namespace (in cgroup TASKS if given).
scale_start_host() {
	local args=() log=$SCALE_DIR/h$1/lso.log kv
	mkdir -p "$SCALE_DIR/h$1/state" "$SCALE_DIR/h$1/files"
	while IFS= read -r kv; do args+=(-E "$kv"); done < <(scale_host_env "$1")
	: >"$log"
	# Into the cgroup before the namespace: ip netns exec mounts a /sys of
	# its own, without /sys/fs/cgroup. One process, exec after exec, in the
	# background and disowned: killed by scale_kill_ns with no "Killed"
	# notice from bash.
	sh -c '[ -z "$1" ] || echo $$ >"$1"; shift; exec "$@"' sh "${2:-}" \
		ip netns exec "$(scale_ns "h$1")" \
		systemd-socket-activate "${args[@]}" -l "$(scale_host_address "$1"):$SCALE_PORT" "$LSO" \
		>>"$log" 2>&1 &
	disown
	for _ in $(seq 100); do
		grep -q "Listening on" "$log" && return 0
		sleep 0.05
	done
	echo "host $1 did not start: $(cat "$log")" >&2
	return 1
}

# scale_recover I: lso --recover on host I, with its settings (as
# lso-recover.service at boot).
scale_recover() {
	local env=()
	mapfile -t env < <(scale_host_env "$1")
	scale_in "h$1" env -i "${env[@]}" "$LSO" --recover >>"$SCALE_DIR/h$1/recover.log" 2>&1
}

# scale_cert: a CA and the edge's certificate for its address, in SCALE_DIR
# (ECDSA P-256: a handshake a request costs the edge less than with RSA).
scale_cert() {
	local d=$SCALE_DIR
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=lso-scale-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=lso-edge \
			-keyout "$d/edge.key" -out "$d/edge.csr" 2>/dev/null &&
		printf 'subjectAltName=IP:%s\n' "$SCALE_EDGE" >"$d/edge.ext" &&
		openssl x509 -req -in "$d/edge.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
			-CAcreateserial -days 2 -extfile "$d/edge.ext" -out "$d/edge.crt" 2>/dev/null &&
		cat "$d/edge.crt" "$d/edge.key" >"$d/edge.pem"
}

# scale_haproxy_cfg N [BIND]: examples/haproxy/haproxy.cfg for N hosts at the
# test's addresses, its files in SCALE_DIR (BIND: another bind line, for the
# benchmark's cleartext). Fails when the shipped file no longer has a line
# this rewrites.
scale_haproxy_cfg() {
	local src=$SCALE_TOP/examples/haproxy/haproxy.cfg out=$SCALE_DIR/haproxy.cfg n=$1 i
	local bind=${2:-"bind :443 ssl crt $SCALE_DIR/edge.pem alpn http/1.1"}
	for pattern in '^	log /dev/log local0$' '^	chroot /var/lib/haproxy$' \
		'^	stats socket /run/haproxy/admin.sock ' '^	bind :443 ssl crt /etc/haproxy/lso.pem ' \
		'^	server host01 192.0.2.11:44444 check$' '^	server host03 192.0.2.13:44444 track lso_new/host03$'; do
		grep -q "$pattern" "$src" || { echo "haproxy.cfg has no line $pattern" >&2; return 1; }
	done
	sed -e 's|^	log /dev/log local0$|	log stdout format raw local0|' \
		-e "s|^	chroot /var/lib/haproxy\$|	chroot $SCALE_DIR/chroot|" \
		-e "s|/run/haproxy/admin.sock|$SCALE_DIR/admin.sock|" \
		-e "s|^	bind :443 ssl crt /etc/haproxy/lso.pem .*|	$bind|" \
		-e "s|192\.0\.2\.1\([0-9]\):44444|$SCALE_NET.1\1:$SCALE_PORT|" "$src" >"$out.all" || return 1
	# Hosts past N: their server lines and backends left out.
	for i in 1 2 3; do
		[ "$i" -le "$n" ] && continue
		sed -i -e "/^	server host0$i /d" -e "/^backend lso_host_0$i\$/,/^\$/d" "$out.all"
	done
	mv "$out.all" "$out"
	mkdir -p "$SCALE_DIR/chroot"
}

# scale_start_haproxy: HAProxy master-worker in the edge namespace, the
# key in its environment when auth is on; waits until every host is up.
scale_start_haproxy() {
	local n=$1
	: >"$SCALE_DIR/haproxy.log"
	# ip itself in the background (not scale_in): $! is then HAProxy's master.
	ip netns exec "$(scale_ns edge)" env -i PATH=/usr/sbin:/usr/bin:/bin ${SCALE_KEY:+"LSO_API_KEY=$SCALE_KEY"} \
		haproxy -W -db -f "$SCALE_DIR/haproxy.cfg" -p "$SCALE_DIR/haproxy.pid" \
		>>"$SCALE_DIR/haproxy.log" 2>&1 &
	SCALE_HAPROXY_PID=$!
	disown
	scale_wait_up "$n"
}

# scale_wait_up N: until HAProxy's stats say N servers of lso_new are UP (bounded, 30 s).
scale_wait_up() {
	for _ in $(seq 300); do
		[ "$(scale_servers_up)" = "$1" ] && return 0
		sleep 0.1
	done
	echo "HAProxy: not $1 hosts up: $(scale_servers_up)" >&2
	return 1
}

# scale_servers_up: how many of lso_new's servers HAProxy holds UP.
scale_servers_up() {
	scale_show_stat | awk -F, '$1 == "lso_new" && $2 != "BACKEND" && $18 ~ /^UP/ {n++} END {print n + 0}'
}

# scale_show_stat: HAProxy's "show stat" (CSV) from its stats socket; nothing
# while it has none.
scale_show_stat() {
	python3 - "$SCALE_DIR/admin.sock" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX)
try:
    s.connect(sys.argv[1])
except OSError:
    sys.exit()
s.sendall(b"show stat\n")
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    sys.stdout.write(chunk.decode())
EOF
}
