# tests/runuser.sh: LSO_RUN_USER, sourced by test.sh (section "runuser"):
# programs and playbooks run as a user of their own. Switching users needs
# root: as root (CI) every check runs; otherwise the fail-closed checks and
# a run as lso's own user do, and the rest is counted as skipped.

# A world of its own that the run user may enter: test.sh's $TMP is 0700.
runuser_world() {
	RU=$(mktemp -d /tmp/lso-runuser.XXXXXX)
	chmod 0755 "$RU"
	mkdir -p "$RU/programs" "$RU/playbooks" "$RU/scratch" "$RU/state"
	chmod 1777 "$RU/scratch"
	cp /usr/bin/id "$RU/programs/id-elf"
	cp /bin/cat "$RU/programs/cat-elf"
	cp "$PROGRAMS/exit-code" "$PROGRAMS/out-err" "$PROGRAMS/marker" "$PROGRAMS/group-sleeper" \
		"$PROGRAMS/show-ids" "$RU/programs/"
	# What a program may do to lso, its parent: signal it, read its environment.
	cat >"$RU/programs/reach-parent" <<'SCRIPT'
#!/bin/sh
if kill -0 "$PPID" 2>/dev/null; then echo "signal: yes"; else echo "signal: no"; fi
if cat "/proc/$PPID/environ" >/dev/null 2>&1; then echo "environ: yes"; else echo "environ: no"; fi
SCRIPT
	chmod 0755 "$RU/programs/"*
	# Readable by root only, in a folder anyone may enter: only the file's mode stops a reader.
	echo "root's secret" >"$RU/secret"
	chmod 0400 "$RU/secret"
	cat >"$RU/playbooks/ids.yml" <<'PLAYBOOK'
- hosts: all
  gather_facts: false
  tasks:
    - command: id -u
      register: ids
    - debug:
        msg: "playbook uid={{ ids.stdout }}"
PLAYBOOK
	chmod 0644 "$RU/playbooks/ids.yml"
}

# A run as the run user: ids, environment, the ELF and the script, output and exit codes.
test_runuser_runs() {
	local uid=$1 gid=$2 groups=$3 name=$4 home=$5
	sync show-ids
	expect "run user: a script runs" "$CODE" 201
	jqcheck "run user: the script has its uid, gid, groups, HOME, USER, LOGNAME" \
		".result.output == \"uid=$uid gid=$gid groups=$groups home=$home user=$name logname=$name\\n\" and .result.return_code == 0"
	sync id-elf '["-u"]'
	jqcheck "run user: an ELF program has its uid" ".result.output == \"$uid\\n\" and .result.return_code == 0"
	sync id-elf '["-G"]'
	jqcheck "run user: an ELF program has its groups" ".result.output == \"$groups\\n\""
	sync exit-code '["7"]'
	jqcheck "run user: exit code unchanged" '.result.return_code == 7 and .result.status == "failed"'
	sync out-err
	jqcheck "run user: output unchanged (stdout, then stderr)" '.result.output == "to stdout\nto stderr\n"'
}

# The section as root: nobody, whose ids the system database gives.
test_runuser_as_root() {
	local uid gid groups home job program
	uid=$(id -u nobody) gid=$(id -g nobody) groups=$(id -G nobody)
	home=$(getent passwd nobody | cut -d: -f6)
	# lso with supplementary groups of its own, which the program must not keep.
	WRAP=(setpriv --groups=4,27,100)
	start_server runuser fd3 EXECUTABLES_ROOT_DIR="$RU/programs" EXECUTABLE_TIMEOUT_SEC=5 \
		LSO_STATE_DIR="$RU/state" LSO_RUN_USER=nobody
	WRAP=()
	test_runuser_runs "$uid" "$gid" "$groups" nobody "$home"
	sync cat-elf "[\"$RU/secret\"]"
	jqcheck "run user: a root 0400 file cannot be read" \
		'.result.return_code == 1 and (.result.output | contains("Permission denied")) and (.result.output | contains("root'"'"'s secret") | not)'
	sync reach-parent
	jqcheck "run user: the program can neither signal lso nor read its environment" \
		'.result.output == "signal: no\nenviron: no\n"'
	# The timeout's group kill, from root onto the run user's process group.
	sync group-sleeper "[\"$RU/scratch/sync.pid\"]"
	jqcheck "run user: a timeout still stops the run" \
		'.result.return_code == -1 and (.result.output | contains("Execution timed out."))'
	check "run user: ... and kills its whole process group" gone "$(cat "$RU/scratch/sync.pid" 2>/dev/null)"
	# Async: the runner is root, the program is not; its death signal survives the switch.
	submit group-sleeper "[\"$RU/scratch/ru.pid\"]"
	job=$JOB
	check "run user: async job running" wait_for 5 job_status_is "$job" running
	wait_for 5 test -s "$RU/scratch/ru.pid"
	program=$(cut -d ' ' -f 2 "$RU/state/jobs/$job.lock")
	expect "run user: the async program runs as it" "$(stat -c %u "/proc/$program" 2>/dev/null)" "$uid"
	kill -KILL "$(cut -d ' ' -f 1 "$RU/state/jobs/$job.lock")"
	# No request in between: only PR_SET_PDEATHSIG can have killed it.
	check "run user: the program dies with its runner (PDEATHSIG after the switch)" gone "$program"
	kill -KILL "$(cat "$RU/scratch/ru.pid")" 2>/dev/null
	# The same world as lso's user: what the switch changes, shown.
	start_server runuser-off fd3 EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state"
	sync cat-elf "[\"$RU/secret\"]"
	jqcheck "no run user: the program runs as lso's user and reads the file" \
		'.result.return_code == 0 and .result.output == "root'"'"'s secret\n"'
	sync id-elf '["-u"]'
	jqcheck "no run user: the program has lso's uid" ".result.output == \"$(id -u)\\n\""
	sync reach-parent
	jqcheck "no run user: the program can signal lso and read its environment" \
		'.result.output == "signal: yes\nenviron: yes\n"'
	# By number, the same user.
	start_server runuser-uid inetd EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		LSO_RUN_USER="$uid"
	sync id-elf '["-u"]'
	jqcheck "run user by uid: the program has it" ".result.output == \"$uid\\n\""
	test_runuser_playbook "$uid"
}

# A playbook as the run user: ansible-playbook and its tasks, its private files removed.
test_runuser_playbook() {
	local uid=$1
	start_receiver runuser
	start_server runuser-pb fd3 EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$RU/playbooks" LSO_RUN_USER=nobody
	playbook "{\"playbook_name\":\"ids.yml\",\"inventory\":$local_inventory,\"callback\":\"$RECEIVER/ok/pb\"}"
	expect "run user: playbook accepted" "$CODE" 201
	check "run user: playbook callback" wait_for 60 has_callbacks "$JOB"
	check "run user: the playbook's task runs as it" jq -e --arg uid "$uid" \
		'.body.status == "successful" and (.body.output | any(contains("playbook uid=" + $uid)))' <(callback_of "$JOB")
	check "run user: the playbook's private files removed" test ! -e "/tmp/lso-playbook-$JOB"
}

# Fail closed: an unknown user, or one lso may not switch to, runs nothing.
test_runuser_fail_closed() {
	start_server runuser-unknown inetd EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		LSO_RUN_USER=no-such-user-lso
	sync marker "[\"$RU/scratch/unknown\"]"
	expect "unknown run user: 500" "$CODE" 500
	jqcheck "unknown run user: configuration error" '.detail == "Server configuration error."'
	check "unknown run user: the program did not run" test ! -e "$RU/scratch/unknown"
	check "unknown run user: the log names LSO_RUN_USER" \
		grep -q 'LSO_RUN_USER=no-such-user-lso: no such user' "$TMP/runuser-unknown.log"
	execute "{\"executable_name\":\"marker\",\"args\":[\"$RU/scratch/unknown-async\"]}"
	expect "unknown run user: async 500" "$CODE" 500
	check "unknown run user: no async job ran" test ! -e "$RU/scratch/unknown-async"
	playbook "{\"playbook_name\":\"ids.yml\",\"inventory\":$local_inventory}"
	expect "unknown run user: playbook 500" "$CODE" 500
	request GET /api/version
	expect "unknown run user: routes that run nothing still answer" "$CODE" 200
	# Burst mode refuses to start, as with auth on and no key.
	start_server runuser-burst burst EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		LSO_RUN_USER=no-such-user-lso
	request GET /api/version
	check "unknown run user, burst mode: nothing served" [ "$CODE" != 200 ]
	# Without -a, systemd-socket-activate execs lso itself: its exit is lso's.
	wait "$SERVER_PID"
	expect "unknown run user, burst mode: exits 78" "$?" 78
	check "unknown run user, burst mode: the log names LSO_RUN_USER" \
		grep -q 'lso: burst: LSO_RUN_USER=no-such-user-lso' "$TMP/runuser-burst.log"
}

# lso not root (USER: the one it runs as): switching to OTHER is refused
# (fail closed), and LSO_RUN_USER naming its own user runs as before.
test_runuser_unprivileged() {
	local user=$1 other=$2 uid
	uid=$(id -u "$user")
	start_server runuser-noperm inetd EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		LSO_RUN_USER="$other"
	sync marker "[\"$RU/scratch/noperm\"]"
	expect "run user without the right to switch: 500" "$CODE" 500
	check "run user without the right to switch: the program did not run" test ! -e "$RU/scratch/noperm"
	check "run user without the right to switch: the log says so" \
		grep -q "LSO_RUN_USER=$other: lso (uid $uid) may not switch users" "$TMP/runuser-noperm.log"
	start_server runuser-self fd3 EXECUTABLES_ROOT_DIR="$RU/programs" LSO_STATE_DIR="$RU/state" \
		LSO_RUN_USER="$user"
	test_runuser_runs "$uid" "$(id -g "$user")" "$(id -G "$user")" "$user" \
		"$(getent passwd "$user" | cut -d: -f6)"
}

suite_runuser() {
	runuser_world
	test_runuser_fail_closed
	if [ "$(id -u)" = 0 ]; then
		test_runuser_as_root
		# The unprivileged case too: lso itself started as nobody.
		WRAP=(setpriv --reuid=nobody --regid="$(id -g nobody)" --init-groups)
		test_runuser_unprivileged nobody root
		WRAP=()
	else
		test_runuser_unprivileged "$(id -un)" "$([ "$(id -un)" = nobody ] && echo root || echo nobody)"
		echo "SKIP: LSO_RUN_USER switching needs root (CI runs test.sh as root)"
		skipped=$((skipped + 1))
	fi
	rm -rf "$RU"
}
