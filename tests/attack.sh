# tests/attack.sh: hostile clients and hostile programs against lso.
#
# Sourced by test.sh, after its helpers (check, expect, jqcheck, request, execute,
# raw, start_server, gone, wait_for, ...) and its `common` array: this file only
# defines functions. Entry point: suite_attack. Every server it starts is named
# attack-*; its files live in $TMP/attack-*.
#
# "Nothing ran" is proven with marker files: tests/programs/marker touches its
# first argument, so every refused request names a fresh marker file that must
# not exist afterwards (and a control run proves the same marker program does
# create it when it is allowed to run).

# --- helpers ---

# attack_marker: a fresh marker path (not created; unique even from a subshell).
attack_marker() { mktemp -u "$TMP/attack-marker.XXXXXXXX"; }

# attack_json NAME MARKER: the body of a sync run of NAME with the marker as argument.
attack_json() {
	jq -cn --arg n "$1" --arg m "$2" '{executable_name: $n, args: [$m], is_async: false}'
}

attack_now_ms() { echo $(($(date +%s%N) / 1000000)); }

# attack_match LABEL GOT REGEX: like expect, for a set of acceptable answers.
attack_match() {
	if [[ $2 =~ ^($3)$ ]]; then pass; else fail "$1: got [$2], want [$3]"; fi
}

# attack_within VALUE LOW HIGH: LOW <= VALUE < HIGH (integers).
attack_within() { [ -n "$1" ] && [ "$1" -ge "$2" ] && [ "$1" -lt "$3" ]; } 2>/dev/null

# attack_lacks TEXT PATTERN: the text has no line matching the pattern.
attack_lacks() { ! grep -q "$2" <<<"$1"; }

# attack_refused LABEL NAME WANT: a sync run of NAME is answered WANT and runs nothing.
attack_refused() {
	local m
	m=$(attack_marker)
	execute "$(attack_json "$2" "$m")"
	attack_match "$1" "$CODE" "$3"
	check "$1: nothing ran" [ ! -e "$m" ]
}

# attack_allowed LABEL NAME: a sync run of NAME gets 201 and runs (the control).
attack_allowed() {
	local m
	m=$(attack_marker)
	execute "$(attack_json "$2" "$m")"
	expect "$1" "$CODE" 201
	check "$1: ran" [ -e "$m" ]
}

# attack_group_alive PGID: how many live (not zombie) processes are in the group.
attack_group_alive() {
	local f s n=0 fields
	for f in /proc/[0-9]*/stat; do
		read -r s 2>/dev/null <"$f" || continue
		s=${s##*) }
		read -r -a fields <<<"$s"
		[ "${fields[2]}" = "$1" ] && [ "${fields[0]}" != Z ] && n=$((n + 1))
	done
	echo "$n"
}

# attack_group_gone PGID: no process of the group is left, within 2 s.
attack_group_gone() {
	[ -n "$1" ] && [ "$1" -gt 1 ] || return 1
	for _ in $(seq 40); do
		[ "$(attack_group_alive "$1")" = 0 ] && return 0
		sleep 0.05
	done
	return 1
}

# attack_alive PID: the process exists and is not a zombie.
attack_alive() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -n "$state" ] && [ "$state" != Z ]
}

# attack_spawns LOG: how many lso processes the launcher has started so far.
attack_spawns() { grep -c '^Spawned ' "$1" 2>/dev/null || true; }

# attack_died_ok LOG PID: the launcher saw that lso exit with code 0.
attack_died_ok() {
	wait_for 3 grep -q "^Child $2 died with code 0" "$1"
}

# attack_net MODE ARGS...: a raw-socket client (Python) for what curl cannot do,
# against 127.0.0.1:$PORT. Modes:
#   send FILE TIMEOUT          send FILE, shut down writing, print the reply
#   hold FILE TIMEOUT          send FILE, keep writing open; print "MS" (to the
#                              first reply byte, -1: none), then the reply
#   trickle FILE NFAST         send NFAST bytes at once, then one byte a second
#                              until a reply comes; print "MS STATUS"
#   vanish LOG FILE            send FILE, close at once without reading; print
#                              "PID MS": the lso that served it, and how long
#                              after the close it was gone (-1: not within 10 s)
#   noread LOG FILE HOLD       small receive buffer; send FILE, never read; print
#                              "PID MS", MS since sending until lso is gone (-1:
#                              not within HOLD s), then close
#   vmhwm FILE STARTFILE OUT   send FILE, read the whole response (body to OUT),
#                              then, with the connection still open, print the
#                              VmHWM (KiB) of the lso named in STARTFILE (field 2)
#   garbage SEED COUNT         COUNT connections, each sending 1..4096 random
#                              bytes then EOF; print each reply's status
attack_net() {
	python3 - "$PORT" "$@" <<'PY'
import os, random, select, socket, sys, time

port, mode, a = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
now_ms = lambda: int(time.monotonic() * 1000)

def connect(rcvbuf=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.connect(("127.0.0.1", port))
    return s

def send(s, data):
    try:
        s.sendall(data)
    except OSError:
        pass

def read_reply(s, timeout):
    data, end = b"", time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return data
        try:
            chunk = s.recv(65536)
        except OSError:
            return data
        if not chunk:
            return data
        data += chunk

def status(data):
    parts = data.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    return parts[1] if len(parts) > 1 and parts[0].startswith("HTTP/") else "none"

def spawns(log):
    with open(log, errors="replace") as f:
        return [l.split(" as PID ")[1].strip().rstrip(".") for l in f
                if l.startswith("Spawned ") and " as PID " in l]

def spawned(log, before):
    end = time.monotonic() + 5
    while time.monotonic() < end:
        pids = spawns(log)
        if len(pids) > before:
            return int(pids[before])
        time.sleep(0.01)
    return 0

def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True

def wait_gone(pid, t0, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if gone(pid):
            return now_ms() - t0
        time.sleep(0.02)
    return -1

def data_of(path):
    with open(path, "rb") as f:
        return f.read()

if mode == "send":
    s = connect()
    send(s, data_of(a[0]))
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sys.stdout.buffer.write(read_reply(s, float(a[1])))
elif mode == "hold":
    s = connect()
    send(s, data_of(a[0]))
    t0 = now_ms()
    ready = select.select([s], [], [], float(a[1]))[0]
    first = now_ms() - t0 if ready else -1
    reply = read_reply(s, float(a[1])) if ready else b""
    sys.stdout.buffer.write(b"%d\n" % first + reply)
elif mode == "trickle":
    data, nfast = data_of(a[0]), int(a[1])
    s = connect()
    t0 = now_ms()
    send(s, data[:nfast])
    for i in range(nfast, len(data)):
        if select.select([s], [], [], 1.0)[0]:
            break
        send(s, data[i:i + 1])
    if select.select([s], [], [], 10)[0]:
        first = now_ms() - t0
        print(first, status(read_reply(s, 2)))
    else:
        print(-1, "none")
elif mode == "vanish":
    before = len(spawns(a[0]))
    s = connect()
    send(s, data_of(a[1]))
    pid = spawned(a[0], before)
    s.close()
    t0 = now_ms()
    print(pid, wait_gone(pid, t0, 10) if pid else -1)
elif mode == "noread":
    before = len(spawns(a[0]))
    s = connect(rcvbuf=4096)
    send(s, data_of(a[1]))
    t0 = now_ms()
    pid = spawned(a[0], before)
    print(pid, wait_gone(pid, t0, float(a[2])) if pid else -1)
    s.close()
elif mode == "vmhwm":
    s = connect()
    send(s, data_of(a[0]))
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    while len(body) < length:
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        body += chunk
    hwm = -1
    try:
        lso = int(open(a[1]).read().split()[1])
        for line in open("/proc/%d/status" % lso):
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, IndexError, ValueError):
        pass
    with open(a[2], "wb") as f:
        f.write(body)
    print(status(head), hwm)
    s.close()
elif mode == "garbage":
    seed, count, out = int(a[0]), int(a[1]), []
    for i in range(count):
        rng = random.Random(seed + i)
        blob = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 4096)))
        s = connect()
        send(s, blob)
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        out.append(status(read_reply(s, 5)))
        s.close()
    print(" ".join(out))
PY
}

# --- 1. bad input ---

# A root of our own, with links pointing in and out, and a copy of marker outside it.
attack_setup_root() {
	ATTACK_ROOT="$TMP/attack-root"
	ATTACK_OUT="$TMP/attack-outside"
	mkdir -p "$ATTACK_ROOT/sub" "$ATTACK_OUT"
	cp "$PROGRAMS/marker" "$PROGRAMS/echo-args" "$PROGRAMS/show-env" "$ATTACK_ROOT/"
	cp "$PROGRAMS/marker" "$ATTACK_ROOT/sub/marker"
	cp "$PROGRAMS/marker" "$ATTACK_OUT/marker"
	ln -s "$ATTACK_OUT/marker" "$ATTACK_ROOT/out-abs"
	ln -s ../attack-outside/marker "$ATTACK_ROOT/out-rel"
	ln -s ../../attack-outside/marker "$ATTACK_ROOT/sub/out-rel"
	ln -s "$ATTACK_OUT" "$ATTACK_ROOT/out-dir"
	ln -s marker "$ATTACK_ROOT/in-link"
	ln -s loop "$ATTACK_ROOT/loop"
	ln -s ../attack-outside/nothing-here "$ATTACK_ROOT/dangling-out"
	ln -s /nonexistent/marker "$ATTACK_ROOT/dangling-abs"
	mkdir -p "$TMP/attack-cred"
	printf 's3cret\n' >"$TMP/attack-cred/lso-api-key"
}

attack_paths() {
	local m
	attack_allowed "control: marker runs" marker
	attack_allowed "control: subfolder" sub/marker
	attack_allowed "control: link inside" in-link
	attack_allowed "control: dot-dot staying inside" sub/../marker
	attack_allowed "control: absolute path inside" "$ATTACK_ROOT/marker"
	check "control: the outside copy is runnable" [ -x "$ATTACK_OUT/marker" ]
	attack_refused "../" ../attack-outside/marker 400
	jqcheck "../ wording" '.detail == "Path '"'"'../attack-outside/marker'"'"' is outside the configured root directory."'
	attack_refused "sub/../../x" sub/../../attack-outside/marker 400
	attack_refused "./../x" ./../attack-outside/marker 400
	attack_refused "sub//..//..//x" sub//..//..//attack-outside/marker 400
	attack_refused "a bare .." .. 400
	# Not safe names (upstream 5.x: ^[A-Za-z0-9._/-]+$): 422, whatever they would resolve to.
	attack_refused "%2e%2e/ is not a safe name" %2e%2e/attack-outside/marker 422
	jqcheck "%2e%2e/: value_error" '.detail[0].type == "value_error" and .detail[0].loc == ["body","executable_name"]'
	attack_refused "%2e%2e%2f is not a safe name" %2e%2e%2fattack-outside%2fmarker 422
	attack_refused "..%2f is not a safe name" ..%2fattack-outside%2fmarker 422
	attack_refused "%252e%252e/ is not a safe name" %252e%252e/attack-outside/marker 422
	attack_refused "backslashes are not safe" '..\attack-outside\marker' 422
	attack_refused "... is a name" .../marker 410
	attack_refused "absolute path outside" "$ATTACK_OUT/marker" 400
	attack_refused "absolute path climbing out of the root" "$ATTACK_ROOT/../attack-outside/marker" 400
	attack_refused "absolute //path outside" "/$ATTACK_OUT/marker" 400
	attack_refused "absolute /usr/bin/touch" /usr/bin/touch 400
	attack_refused "absolute path outside, missing" /nonexistent/marker 400
	attack_refused "absolute symlink out" out-abs 400
	attack_refused "relative symlink out" out-rel 400
	attack_refused "relative symlink out of a subfolder" sub/out-rel 400
	attack_refused "directory symlink out" out-dir/marker 400
	attack_refused "symlink loop" loop 410
	attack_refused "trailing slash" marker/ 410
	attack_refused "the root itself" . 503
	attack_refused "empty name" "" 422
	attack_refused "newline in the name" $'marker\nx' 422
	attack_refused "space in the name" 'marker x' 422
	attack_refused "a shell in the name" 'marker;id' 422
	attack_refused "non-ASCII in the name" 'mårker' 422
	attack_refused "dangling symlink out: decided before existence" dangling-out 400
	attack_refused "absolute dangling symlink out" dangling-abs 400
	# A link that was fine once, repointed outside: resolved again on every request.
	ln -s marker "$ATTACK_ROOT/swap"
	attack_allowed "swap: first run inside" swap
	ln -sfn "$ATTACK_OUT/marker" "$ATTACK_ROOT/swap"
	attack_refused "swap: repointed outside" swap 400
	ln -sfn ../attack-outside/marker "$ATTACK_ROOT/swap"
	attack_refused "swap: repointed outside, relative" swap 400
	ln -sfn marker "$ATTACK_ROOT/swap"
	attack_allowed "swap: back inside" swap
	check "the server path is never shown" bash -c "! grep -qF '$ATTACK_ROOT' '$TMP/body'"
}

attack_nul() {
	local m
	m=$(attack_marker)
	execute "{\"executable_name\":\"marker\",\"args\":[\"$m\\u0000x\"],\"is_async\":false}"
	expect "escaped NUL in an argument" "$CODE" 422
	check "escaped NUL in an argument: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	execute "{\"executable_name\":\"marker\\u0000x\",\"args\":[\"$m\"],\"is_async\":false}"
	expect "escaped NUL in the name" "$CODE" 422
	check "escaped NUL in the name: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	execute "{\"executable_name\":\"marker\\u0000\",\"args\":[\"$m\"],\"is_async\":false}"
	expect "escaped NUL ending the name" "$CODE" 422
	check "escaped NUL ending the name: nothing ran" [ ! -e "$m" ]
	# Raw NUL bytes: JSON forbids unescaped control characters in strings
	# (upstream's json.loads answers 422 json_invalid); cutting the string at the
	# NUL would run "marker" / touch the marker path.
	m=$(attack_marker)
	printf '{"executable_name":"marker","args":["%s\0x"],"is_async":false}' "$m" >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "raw NUL byte in an argument" "$CODE" 422
	check "raw NUL byte in an argument: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	printf '{"executable_name":"marker\0junk","args":["%s"],"is_async":false}' "$m" >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "raw NUL byte in the name" "$CODE" 422
	check "raw NUL byte in the name: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	printf '{"executable_name":"marker",\0"args":["%s"],"is_async":false}' "$m" >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "raw NUL byte between members" "$CODE" 422
	check "raw NUL byte between members: nothing ran" [ ! -e "$m" ]
	printf '{"executable_name":"echo-args","args":["a\001b"],"is_async":false}' >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "raw control byte in a string: invalid JSON, as upstream" "$CODE" 422
}

attack_huge() {
	local name
	name=$(head -c 10240 /dev/zero | tr '\0' a)
	attack_refused "10 KB name" "$name" '410|422'
	name=$(printf 'sub/%.0s' $(seq 2560))marker
	attack_refused "10 KB name of subfolders" "$name" '410|422'
	name=$(printf './%.0s' $(seq 5120))marker
	attack_refused "10 KB name of ./" "$name" '410|422'
	name=$(printf '../%.0s' $(seq 3400))marker
	attack_refused "10 KB name of ../" "$name" '400|410|422'
	name=$(printf '%s/%.0s' "$ATTACK_ROOT" $(seq 100))
	attack_refused "absolute 10 KB-ish name" "${name}marker" '400|410|422'
	name=$(head -c 100000 /dev/zero | tr '\0' a)
	jq -cn --arg n "$name" '{executable_name: $n, is_async: false}' >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	attack_match "100 KB name" "$CODE" '410|422'
	request GET /api/version
	expect "alive after huge names" "$CODE" 200
}

# Arguments the kernel refuses (E2BIG): the run fails cleanly, lso lives on.
attack_argv() {
	local m per
	m=$(attack_marker)
	head -c 300000 /dev/zero | tr '\0' x >"$TMP/attack-big"
	jq -cn --arg m "$m" --rawfile big "$TMP/attack-big" '{executable_name: "marker", args: [$m, $big], is_async: false}' \
		>"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "one 300 KB argument" "$CODE" 201
	jqcheck "one 300 KB argument: E2BIG" '.result.return_code == -1 and .result.status == "failed" and (.result.output | test("Argument list too long"))'
	check "one 300 KB argument: nothing ran" [ ! -e "$m" ]
	request GET /api/version
	expect "alive after a 300 KB argument" "$CODE" 200
	# 40,000 arguments, together past ARG_MAX (2 MiB with an 8 MiB stack).
	m=$(attack_marker)
	per=$(($(getconf ARG_MAX) * 3 / 2 / 40000))
	jq -cn --arg m "$m" --argjson per "$per" \
		'{executable_name: "marker", args: ([$m] + [range(40000) | "a" * $per]), is_async: false}' \
		>"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "40,000 arguments" "$CODE" 201
	jqcheck "40,000 arguments: E2BIG" '.result.return_code == -1 and (.result.output | test("Argument list too long"))'
	check "40,000 arguments: nothing ran" [ ! -e "$m" ]
	attack_allowed "alive after 40,000 arguments" marker
}

attack_headers() {
	local m reply json
	# 10,000 small headers, 50 KB: within the 64 KiB header limit.
	{ printf 'GET /api/version HTTP/1.1\r\nHost: x\r\n'; printf 'x:1\r\n%.0s' $(seq 10000); printf '\r\n'; } \
		>"$TMP/attack-req"
	expect "10,000 headers within 64 KiB" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 200
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	{ printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n' "${#json}"
		printf 'x:1\r\n%.0s' $(seq 10000); printf '\r\n%s' "$json"; } >"$TMP/attack-req"
	expect "10,000 headers, then a body" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 201
	check "10,000 headers, then a body: ran" [ -e "$m" ]
	# 14,000 of them, 70 KB: 431, and the body after them is not run.
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	{ printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n' "${#json}"
		printf 'x:1\r\n%.0s' $(seq 14000); printf '\r\n%s' "$json"; } >"$TMP/attack-req"
	expect "header flood over 64 KiB" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 431
	check "header flood over 64 KiB: nothing ran" [ ! -e "$m" ]
	{ printf 'GET /api/version?'; head -c 70000 /dev/zero | tr '\0' a; printf ' HTTP/1.1\r\nHost: x\r\n\r\n'; } \
		>"$TMP/attack-req"
	expect "request line over 64 KiB" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 431
	# No blank line at all, then EOF.
	{ printf 'GET /api/version HTTP/1.1\r\nHost: x\r\n'; printf 'x:1\r\n%.0s' $(seq 20000); } >"$TMP/attack-req"
	expect "endless headers, no blank line" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 431
}

attack_garbage() {
	local got
	got=$(attack_net garbage 1 20)
	expect "random binary: 400 each time" "$got" "$(printf '400 %.0s' $(seq 20) | sed 's/ $//')"
	head -c 3000 /dev/urandom >"$TMP/attack-req"
	printf '\r\n\r\n' >>"$TMP/attack-req"
	expect "random binary ending in a blank line" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 400
	{ printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\n'; head -c 2000 /dev/urandom | tr -d '\n'; printf '\r\n\r\n'; } \
		>"$TMP/attack-req"
	expect "request line, then a binary header" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 400
	request GET /api/version
	expect "alive after garbage" "$CODE" 200
}

# attack_smuggle LABEL WANT HEADER-LINES BODY: a raw POST of a marker run, framed
# by HEADER-LINES ("\r\n"-separated, printf %b escapes); {LEN} and {HEX} stand
# for the JSON's length in decimal and hex, {JSON} for the JSON itself.
# attack_body_after_head: what follows the header block of a raw response on stdin.
attack_body_after_head() { sed '1,/^\r$/d'; }

# attack_header NAME: the value of a header of a raw response on stdin.
attack_header() { tr -d '\r' | sed -n "s/^$1: //Ip" | head -n 1; }

# RFC 9112 and 9110: HEAD on GET routes, the absolute-form target, empty lines before the request line.
attack_rfc9112() {
	local got length m body
	request GET /api/version
	length=$(wc -c <"$TMP/body")
	got=$(raw 'HEAD /api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "HEAD /api/version: 200" "$(status_of <<<"$got")" 200
	expect "HEAD: Content-Length as GET's" "$(attack_header Content-Length <<<"$got")" "$length"
	expect "HEAD: no body" "$(attack_body_after_head <<<"$got" | wc -c)" 0
	got=$(raw 'HEAD /api/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "HEAD /api/openapi.json: 200" "$(status_of <<<"$got")" 200
	expect "HEAD /api/openapi.json: no body" "$(attack_body_after_head <<<"$got" | wc -c)" 0
	got=$(raw 'HEAD /api/jobs/00000000-0000-4000-8000-000000000000 HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "HEAD of an unknown job: 404" "$(status_of <<<"$got")" 404
	expect "HEAD of an unknown job: no body" "$(attack_body_after_head <<<"$got" | wc -c)" 0
	got=$(raw 'HEAD /api/execute/ HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "HEAD on a POST route: 405" "$(status_of <<<"$got")" 405
	got=$(raw "GET http://127.0.0.1:$PORT/api/version HTTP/1.1\r\nHost: x\r\n\r\n")
	expect "absolute-form: 200" "$(status_of <<<"$got")" 200
	check "absolute-form: the body" jq -e '.api == "2.0"' <<<"$(attack_body_after_head <<<"$got")"
	got=$(raw 'GET HTTPS://example.org/api/version?x=1 HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "absolute-form, https and a query: 200" "$(status_of <<<"$got")" 200
	got=$(raw 'GET http://example.org HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "absolute-form without a path is /: 404" "$(status_of <<<"$got")" 404
	got=$(raw 'GET http://user@example.org/api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "absolute-form with userinfo: 400" "$(status_of <<<"$got")" 400
	got=$(raw 'GET http:///api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "absolute-form without a host: 400" "$(status_of <<<"$got")" 400
	got=$(raw 'GET ftp://example.org/api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "another scheme: 400" "$(status_of <<<"$got")" 400
	m=$(attack_marker)
	body=$(attack_json marker "$m")
	got=$(raw "POST http://example.org/api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${#body}\r\n\r\n$body")
	expect "absolute-form POST runs: 201" "$(status_of <<<"$got")" 201
	check "absolute-form POST: it ran" [ -e "$m" ]
	got=$(raw '\r\nGET /api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "a CRLF before the request line: 200" "$(status_of <<<"$got")" 200
	got=$(raw '\r\n\n\r\nGET /api/version HTTP/1.1\r\nHost: x\r\n\r\n')
	expect "empty lines before the request line: 200" "$(status_of <<<"$got")" 200
	head -c 70000 /dev/zero | tr '\0' '\n' >"$TMP/attack-req"
	expect "endless empty lines: 431" "$(attack_net send "$TMP/attack-req" 5 | status_of)" 431
}

attack_smuggle() {
	local m json hex head body reply
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	hex=$(printf %x "${#json}")
	head=${3//\{LEN\}/${#json}}
	head=${head//\{HEX\}/$hex}
	body=${4//\{JSON\}/$json}
	body=${body//\{HEX\}/$hex}
	body=${body//\{LEN\}/${#json}}
	reply=$(raw "POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n$head\r\n\r\n$body")
	attack_match "$1" "$(status_of <<<"$reply")" "$2"
	if [ "$2" = 201 ]; then
		check "$1: ran" [ -e "$m" ]
	else
		check "$1: nothing ran" [ ! -e "$m" ]
	fi
}

attack_smuggling() {
	local chunked='{HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "control: Content-Length" 201 'Content-Length: {LEN}' '{JSON}'
	attack_smuggle "control: chunked" 201 'Transfer-Encoding: chunked' "$chunked"
	attack_smuggle "control: chunked, upper case" 201 'Transfer-Encoding: CHUNKED' "$chunked"
	attack_smuggle "CL then TE" '400|501' 'Content-Length: {LEN}\r\nTransfer-Encoding: chunked' "$chunked"
	attack_smuggle "TE then CL" '400|501' 'Transfer-Encoding: chunked\r\nContent-Length: {LEN}' "$chunked"
	attack_smuggle "TE then CL 0" '400|501' 'Transfer-Encoding: chunked\r\nContent-Length: 0' "$chunked"
	attack_smuggle "duplicate CL, differing" 400 'Content-Length: {LEN}\r\nContent-Length: 5' '{JSON}'
	attack_smuggle "CL list" 400 'Content-Length: {LEN}, {LEN}' '{JSON}'
	attack_smuggle "TE: chunked, identity" '400|501' 'Transfer-Encoding: chunked, identity' "$chunked"
	attack_smuggle "TE: identity, chunked" '400|501' 'Transfer-Encoding: identity, chunked' "$chunked"
	attack_smuggle "TE twice" '400|501' 'Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked' "$chunked"
	attack_smuggle "TE with a space before the colon" 400 'Transfer-Encoding : chunked' "$chunked"
	attack_smuggle "CL with a space before the colon" 400 'Content-Length : {LEN}' '{JSON}'
	attack_smuggle "TE folded" '400|501' 'Transfer-Encoding:\r\n chunked' "$chunked"
	attack_smuggle "TE with a vertical tab" 400 'Transfer-Encoding:\x0bchunked' "$chunked"
	attack_smuggle "chunk size with +" 400 'Transfer-Encoding: chunked' '+{HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "chunk size 0x" 400 'Transfer-Encoding: chunked' '0x{HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "chunk size negative" 400 'Transfer-Encoding: chunked' '-{HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "chunk size with a leading space" 400 'Transfer-Encoding: chunked' ' {HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "chunk size wrong" 400 'Transfer-Encoding: chunked' '5\r\n{JSON}\r\n0\r\n\r\n'
	# A chunk size past any limit is refused before a byte is read: 400, or 413 as
	# the size is larger than LSO_MAX_BODY_BYTES (the parser stops at the limit,
	# so no overflow can wrap it round to a small size).
	attack_smuggle "chunk size huge hex" '400|413' 'Transfer-Encoding: chunked' 'ffffffffffffffffffffffffffffffff\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "chunk size 2^64 + len" '400|413' 'Transfer-Encoding: chunked' '1000000000000000{HEX}\r\n{JSON}\r\n0\r\n\r\n'
	attack_smuggle "negative Content-Length" 400 'Content-Length: -{LEN}' '{JSON}'
	attack_smuggle "Content-Length 1 0" 400 'Content-Length: 1 0' '{JSON}'
	attack_smuggle "Content-Length +N" 400 'Content-Length: +{LEN}' '{JSON}'
	attack_smuggle "Content-Length 0x" 400 'Content-Length: 0x{HEX}' '{JSON}'
	attack_smuggle "Content-Length empty" 400 'Content-Length: ' '{JSON}'
	attack_smuggle "Content-Length overflowing" '400|413' 'Content-Length: 18446744073709551616{LEN}' '{JSON}'
}

# --- 1b. limits: bodies, slow and vanishing clients (LSO_MAX_BODY_BYTES=1000, LSO_READ_TIMEOUT_SEC=3) ---

attack_body_limits() {
	local m json reply ms
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	printf '%s%*s' "$json" $((1000 - ${#json})) '' >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "body of exactly LSO_MAX_BODY_BYTES" "$CODE" 201
	check "body of exactly LSO_MAX_BODY_BYTES: ran" [ -e "$m" ]
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	printf '%s%*s' "$json" $((1001 - ${#json})) '' >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-body"
	expect "one byte over LSO_MAX_BODY_BYTES" "$CODE" 413
	check "one byte over: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	printf '%s%*s' "$json" 5000 '' >"$TMP/attack-body"
	request POST /api/execute/ -H 'Content-Type: application/json' -H 'Transfer-Encoding: chunked' \
		--data-binary @"$TMP/attack-body"
	expect "chunked body over the limit" "$CODE" 413
	check "chunked body over the limit: nothing ran" [ ! -e "$m" ]
	# Expect: 100-continue with a body over the limit: 413 at once, no 100, body never sent.
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n' \
		>"$TMP/attack-req"
	reply=$(attack_net hold "$TMP/attack-req" 5)
	ms=$(head -n 1 <<<"$reply")
	expect "Expect: 100-continue over the limit" "$(sed -n 2p <<<"$reply" | cut -d ' ' -f 2)" 413
	check "413 without waiting for the body (${ms} ms)" attack_within "$ms" 0 1000
	check "no 100 Continue before the 413" attack_lacks "$reply" '^HTTP/1.1 100'
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999999999999999\r\n\r\n' \
		>"$TMP/attack-req"
	reply=$(attack_net hold "$TMP/attack-req" 5)
	expect "Content-Length of 20 digits" "$(sed -n 2p <<<"$reply" | cut -d ' ' -f 2)" 413
	ms=$(head -n 1 <<<"$reply")
	check "20-digit Content-Length answered at once (${ms} ms)" attack_within "$ms" 0 1000
}

attack_slow() {
	local m json got
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
		"${#json}" "$json" >"$TMP/attack-req"
	got=$(attack_net trickle "$TMP/attack-req" 0)
	expect "one byte a second: 408" "${got#* }" 408
	check "408 at LSO_READ_TIMEOUT_SEC, not later (${got% *} ms)" \
		attack_within "${got% *}" 2500 4500
	check "one byte a second: nothing ran" [ ! -e "$m" ]
	# Headers at once, then the body one byte a second: the deadline is for the whole request.
	got=$(attack_net trickle "$TMP/attack-req" $(($(wc -c <"$TMP/attack-req") - ${#json})))
	expect "body one byte a second: 408" "${got#* }" 408
	check "body: 408 at the deadline (${got% *} ms)" attack_within "${got% *}" 2500 4500
	check "body one byte a second: nothing ran" [ ! -e "$m" ]
}

# Clients that go away before the request is whole: lso exits at once, runs nothing.
attack_vanish_request() {
	local log="$TMP/attack-limits.log" m json got pid ms
	m=$(attack_marker)
	json=$(attack_json marker "$m")
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Ty' >"$TMP/attack-req"
	got=$(attack_net vanish "$log" "$TMP/attack-req")
	pid=${got% *} ms=${got#* }
	check "half the headers, then gone: lso exits (${ms} ms)" attack_within "$ms" 0 2000
	check "half the headers: lso exited 0" attack_died_ok "$log" "$pid"
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
		"${#json}" "${json:0:$((${#json} - 5))}" >"$TMP/attack-req"
	got=$(attack_net vanish "$log" "$TMP/attack-req")
	pid=${got% *} ms=${got#* }
	check "all but the last 5 body bytes, then gone: lso exits (${ms} ms)" attack_within "$ms" 0 2000
	check "half the body: lso exited 0" attack_died_ok "$log" "$pid"
	check "half the body: nothing ran" [ ! -e "$m" ]
	: >"$TMP/attack-req"
	got=$(attack_net vanish "$log" "$TMP/attack-req")
	pid=${got% *} ms=${got#* }
	check "connect, then gone: lso exits (${ms} ms)" attack_within "$ms" 0 2000
	check "connect, then gone: lso exited 0" attack_died_ok "$log" "$pid"
}

# Clients that go away, or stop reading, while a large response is being written
# (LSO_READ_TIMEOUT_SEC=2 is also the write deadline; 20 MB of output).
attack_vanish_response() {
	local log="$TMP/attack-vanish.log" f body got pid ms
	f="$TMP/attack-vanish-flood"
	body=$(jq -cn --arg f "$f" '{executable_name: "hostile/flood", args: [$f, "20000000"], is_async: false}')
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
		"${#body}" "$body" >"$TMP/attack-req"
	got=$(attack_net vanish "$log" "$TMP/attack-req")
	pid=${got% *} ms=${got#* }
	check "closed before reading: lso exits within run + write deadline (${ms} ms)" \
		attack_within "$ms" 0 5000
	check "closed before reading: lso exited 0" attack_died_ok "$log" "$pid"
	check "closed before reading: the program had run" [ -s "$f" ]
	check "closed before reading: no process of the program left" attack_group_gone "$(cut -d ' ' -f 1 "$f.start")"
	check "closed before reading: the lso was the program's parent" [ "$(cut -d ' ' -f 2 "$f.start")" = "$pid" ]
	rm -f "$f" "$f.start"
	got=$(attack_net noread "$log" "$TMP/attack-req" 10)
	pid=${got% *} ms=${got#* }
	check "never reading: lso gives up at the write deadline (${ms} ms)" \
		attack_within "$ms" 1500 6000
	check "never reading: lso exited 0" attack_died_ok "$log" "$pid"
	check "never reading: no process of the program left" attack_group_gone "$(cut -d ' ' -f 1 "$f.start")"
	check "never reading: nothing left of that lso in /proc" wait_for 2 bash -c "! test -e /proc/$pid"
}

# --- 2. hostile programs (EXECUTABLE_TIMEOUT_SEC=3, grace 2 s, LSO_MAX_OUTPUT_BYTES=1000000) ---

# attack_timed NAME ARGS-JSON: a sync run; sets ATTACK_MS.
attack_timed() {
	local t0
	t0=$(attack_now_ms)
	sync "$1" "$2"
	ATTACK_MS=$(($(attack_now_ms) - t0))
}

attack_flood() {
	local f="$TMP/attack-flood" body got hwm_end t0
	body=$(jq -cn --arg f "$f" '{executable_name: "hostile/flood", args: [$f], is_async: false}')
	printf 'POST /api/execute/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
		"${#body}" "$body" >"$TMP/attack-req"
	t0=$(attack_now_ms)
	got=$(attack_net vmhwm "$TMP/attack-req" "$f.start" "$TMP/body")
	ATTACK_MS=$(($(attack_now_ms) - t0))
	expect "100 MB of output" "${got% *}" 201
	jqcheck "100 MB: ends on its own, exit status kept" '.result.return_code == 0 and .result.status == "successful"'
	check "100 MB: within the timeout (${ATTACK_MS} ms)" [ "$ATTACK_MS" -lt 3000 ]
	# The cap holds for the output as sent, escaped ("\n" is 2 bytes): within one escape (6) of it.
	jqcheck "100 MB: capped with the truncation line" \
		'(.result.output | tojson | length - 2 | . <= 1000100 and . >= 999994) and (.result.output | endswith("\n[output truncated at 1000000 bytes]\n"))'
	jqcheck "100 MB: output starts with what was printed" '.result.output | startswith("flood flood")'
	hwm_end=$(cut -d ' ' -f 2 "$f" 2>/dev/null)
	echo "   lso VmHWM: ${hwm_end:-?} KiB when the 100 MB were read, ${got#* } KiB after the response"
	check "100 MB: lso's peak memory under 32 MiB while reading (${hwm_end:-?} KiB)" \
		attack_within "$hwm_end" 1 32768
	check "100 MB: lso's peak memory under 32 MiB after answering (${got#* } KiB)" \
		attack_within "${got#* }" 1 32768
	check "100 MB: no process of its group left" attack_group_gone "$(cut -d ' ' -f 1 "$f.start")"
}

# stderr that fills the output limit first must not push stdout out: stdout comes first.
attack_stderr_first() {
	sync stderr-first
	jqcheck "stderr first: stdout kept" '.result.output | startswith("RESULT=42\neee")'
	jqcheck "stderr first: stderr cut to what is left" '(.result.output | length) < 1000100 and
		(.result.output | endswith("e\n[output truncated at 1000000 bytes]\n"))'
	jqcheck "stderr first: exit status kept" '.result.return_code == 0'
}

attack_close_stdout() {
	local f="$TMP/attack-closed"
	attack_timed hostile/close-stdout "[\"$f\"]"
	jqcheck "stdout closed, still running: timed out" '.result.return_code == -1 and (.result.output | endswith("Execution timed out."))'
	check "stdout closed: ends at the timeout (${ATTACK_MS} ms)" attack_within "$ATTACK_MS" 2900 5000
	check "stdout closed: its child killed" gone "$(cut -d ' ' -f 2 "$f")"
	check "stdout closed: no process of its group left" attack_group_gone "$(cut -d ' ' -f 1 "$f")"
}

# A daemon that double-forks and calls setsid() leaves the program's process
# group and session, but not lso: lso is the program's subreaper, so the
# daemon is re-parented to it and killed when the run ends (1 s after the
# program exits, or at the timeout + grace), with whatever it started.
attack_daemon() {
	local f="$TMP/attack-daemon"
	attack_timed hostile/daemon "[\"$f\", \"exit\"]"
	jqcheck "daemon holding the pipes: the program's exit status" '.result.return_code == 0 and (.result.output | startswith("daemon started\n"))'
	check "daemon holding the pipes: the request ends in time (${ATTACK_MS} ms)" [ "$ATTACK_MS" -lt 5000 ]
	check "daemon holding the pipes: no process of the program's group left" attack_group_gone "$(cat "$f.pgid" 2>/dev/null)"
	check "setsid daemon: killed with its run" gone "$(cat "$f" 2>/dev/null)"
	rm -f "$f" "$f.pgid"
	attack_timed hostile/daemon "[\"$f\", \"stay\", \"chatty\"]"
	jqcheck "chatty daemon, program stays: timed out" '.result.return_code == -1 and (.result.output | endswith("Execution timed out."))'
	check "chatty daemon: the request ends within timeout + grace (${ATTACK_MS} ms)" [ "$ATTACK_MS" -lt 5000 ]
	check "chatty daemon: no process of the program's group left" attack_group_gone "$(cat "$f.pgid" 2>/dev/null)"
	check "chatty setsid daemon: killed with its run" gone "$(cat "$f" 2>/dev/null)"
}

attack_ignore_term() {
	local f="$TMP/attack-ignorer"
	attack_timed hostile/ignore-term "[\"$f\"]"
	jqcheck "SIGTERM ignored: timed out" '.result.return_code == -1 and (.result.output | endswith("Execution timed out."))'
	check "SIGTERM ignored: SIGKILL after the grace (${ATTACK_MS} ms)" attack_within "$ATTACK_MS" 4800 6000
	check "SIGTERM ignored: its child killed too" gone "$(cut -d ' ' -f 2 "$f")"
	check "SIGTERM ignored: no process of its group left" attack_group_gone "$(cut -d ' ' -f 1 "$f")"
}

attack_fork_many() {
	local f="$TMP/attack-forker" pid left=0
	attack_timed hostile/fork-many "[\"$f\", \"50\"]"
	jqcheck "50 children: timed out" '.result.return_code == -1 and (.result.output | endswith("Execution timed out."))'
	check "50 children: ends at the timeout (${ATTACK_MS} ms)" attack_within "$ATTACK_MS" 2900 5000
	expect "50 children: all noted" "$(wc -l <"$f" 2>/dev/null)" 51
	check "50 children: no process of the group left" attack_group_gone "$(head -n 1 "$f")"
	for pid in $(cat "$f" 2>/dev/null); do gone "$pid" || left=$((left + 1)); done
	expect "50 children: every one gone" "$left" 0
}

# --- 3. authentication ---

# attack_auth LABEL: the server answers for token s3cret.
attack_auth() {
	local l=$1 ok='Authorization: Bearer s3cret' m auth job page
	request GET /api/version
	expect "$l: /api/version without a key" "$CODE" 401
	request GET /api/version/
	expect "$l: /api/version/ without a key" "$CODE" 401
	request GET /api/version -H 'Authorization: Bearer wrong'
	expect "$l: /api/version with a wrong key" "$CODE" 401
	request GET /api/version -H "$ok"
	expect "$l: /api/version with the key" "$CODE" 200
	m=$(attack_marker)
	execute "$(attack_json marker "$m")"
	expect "$l: no key" "$CODE" 401
	check "$l: WWW-Authenticate: Bearer" grep -qi '^WWW-Authenticate: Bearer' "$TMP/headers"
	jqcheck "$l: 401 detail" '.detail == "Not authenticated"'
	check "$l: no key: nothing ran" [ ! -e "$m" ]
	# Before any body validation: a body that would be a 422 is a 401 without the key.
	execute '{"executable_name":"a b","args":5}'
	expect "$l: 401 before validation" "$CODE" 401
	for auth in 'Bearer nope' 'Bearer s3cre' 'Bearer s3cretX' 'Bearer s3crets3cret' 'Bearer S3CRET' \
		'Bearer' 'Bearer s' 'Basic s3cret' 's3cret' 'Bearers3cret' 'Token s3cret' 'Bearer  s3cret'; do
		m=$(attack_marker)
		execute "$(attack_json marker "$m")" -H "Authorization: $auth"
		expect "$l: Authorization: $auth" "$CODE" 401
		check "$l: Authorization: $auth: WWW-Authenticate" grep -qi '^WWW-Authenticate: Bearer' "$TMP/headers"
		check "$l: Authorization: $auth: nothing ran" [ ! -e "$m" ]
	done
	m=$(attack_marker)
	request POST /api/version/../execute/ --path-as-is -H 'Content-Type: application/json' \
		--data-binary "$(attack_json marker "$m")"
	attack_match "$l: /api/version/../execute/ without a key" "$CODE" '401|404'
	check "$l: /api/version/../execute/: nothing ran" [ ! -e "$m" ]
	m=$(attack_marker)
	execute "$(attack_json marker "$m")" -H "$ok"
	expect "$l: right key: sync run" "$CODE" 201
	check "$l: right key: ran" [ -e "$m" ]
	m=$(attack_marker)
	execute "$(attack_json marker "$m")" -H 'Authorization: bearer s3cret'
	expect "$l: scheme is case-insensitive" "$CODE" 201
	m=$(attack_marker)
	execute "$(attack_json marker "$m")" -H 'Authorization: BEARER s3cret'
	expect "$l: scheme in capitals" "$CODE" 201
	# The key never reaches a program, nor does the way to its credential.
	execute '{"executable_name":"show-env","is_async":false}' -H "$ok"
	jqcheck "$l: the program sees no LSO_API_KEY, no CREDENTIALS_DIRECTORY" \
		'.result.output | test("LSO_API_KEY|CREDENTIALS_DIRECTORY|s3cret") | not'
	execute '{"executable_name":"echo-args","args":["authorized"]}' -H "$ok"
	expect "$l: right key: async run" "$CODE" 201
	job=$(jq -r .job_id "$TMP/body")
	request GET "/api/jobs/$job"
	expect "$l: job record without a key" "$CODE" 401
	request DELETE "/api/jobs/$job"
	expect "$l: cancel without a key" "$CODE" 401
	request GET "/api/files/$job"
	expect "$l: files without a key" "$CODE" 401
	request GET "/api/files/$job/x"
	expect "$l: a file without a key" "$CODE" 401
	request DELETE "/api/files/$job/delete"
	expect "$l: deleting files without a key" "$CODE" 401
	request GET /api/files/not-a-uuid
	expect "$l: 401 before the job id is checked" "$CODE" 401
	request GET "/api/files/$job" -H "$ok"
	expect "$l: files with the key" "$CODE" 200
	check "$l: job done" wait_for 5 bash -c "curl -s -H '$ok' http://127.0.0.1:$PORT/api/jobs/$job | jq -e '.status == \"successful\"'"
	request GET "/api/jobs/$job" -H "$ok"
	expect "$l: job record with the key" "$CODE" 200
	jqcheck "$l: job record body" ".job_id == \"$job\" and .result.output == \"authorized\n\""
	request DELETE "/api/jobs/$job" -H "$ok"
	expect "$l: cancel a finished job with the key" "$CODE" 409
	request GET /api/jobs/00000000-0000-4000-8000-000000000000 -H "$ok"
	expect "$l: unknown job with the key" "$CODE" 404
	request GET /api/nowhere -H "$ok"
	expect "$l: unknown path with the key" "$CODE" 404
	# As FastAPI: routing first (404, 405), then the key.
	request GET /api/nowhere
	expect "$l: unknown path without a key" "$CODE" 404
	request GET /api/execute/ -H "$ok"
	expect "$l: wrong method with the key" "$CODE" 405
	request GET /api/execute/
	expect "$l: wrong method without a key" "$CODE" 405
	# Public, as upstream: the OpenAPI document and the documentation pages.
	for page in /api/openapi.json /api/doc /api/redoc; do
		request GET "$page"
		expect "$l: $page without a key" "$CODE" 200
	done
}

# attack_auth_broken LABEL: auth is on but there is no usable key: nothing is
# served (500, the log names the setting), the public pages still are.
attack_auth_broken() {
	local l=$1 m page
	m=$(attack_marker)
	execute "$(attack_json marker "$m")" -H 'Authorization: Bearer '
	expect "$l: execute is 500" "$CODE" 500
	check "$l: nothing ran" [ ! -e "$m" ]
	jqcheck "$l: 500 detail" '.detail == "Server configuration error."'
	execute "$(attack_json marker "$m")"
	expect "$l: without Authorization, 500 too" "$CODE" 500
	request GET /api/version -H 'Authorization: Bearer anything'
	expect "$l: version is 500" "$CODE" 500
	request GET /api/jobs/00000000-0000-4000-8000-000000000000
	expect "$l: jobs are 500" "$CODE" 500
	request GET /api/files/00000000-0000-4000-8000-000000000000
	expect "$l: files are 500" "$CODE" 500
	for page in /api/openapi.json /api/doc /api/redoc; do
		request GET "$page"
		expect "$l: $page still served" "$CODE" 200
	done
	request GET /api/nowhere
	expect "$l: unknown path still 404" "$CODE" 404
	check "$l: the log names the setting" grep -q 'LSO_OAUTH2_ACTIVE is on but there is no API key' \
		"$TMP/$SERVER_LOG.log"
}

# The key is read when a route needs it: the public pages never open the credential.
attack_auth_lazy() {
	local cred="$TMP/attack-lazy-cred" page
	mkdir -p "$cred"
	rm -f "$cred/lso-api-key" "$TMP/attack-lazy-opened"
	mkfifo "$cred/lso-api-key"
	# This open completes only when lso opens the FIFO to read the key.
	(exec 3>"$cred/lso-api-key"; : >"$TMP/attack-lazy-opened") &
	pids+=($!)
	start_server attack-lazy inetd "${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_ROOT" \
		LSO_STATE_DIR="$TMP/attack-auth-state" LSO_OAUTH2_ACTIVE=true CREDENTIALS_DIRECTORY="$cred"
	for page in /api/openapi.json /api/doc /api/redoc /api/nowhere; do
		request GET "$page"
	done
	sleep 0.2
	check "lazy: the public pages never open the credential" [ ! -e "$TMP/attack-lazy-opened" ]
	request GET /api/version
	expect "lazy: a FIFO for a credential is no key: 500" "$CODE" 500
	check "lazy: a route that needs the key opens it" wait_for 2 test -e "$TMP/attack-lazy-opened"
}

# --- playbooks: client strings are never templated (real Ansible) ---

# attack_lookup MARKER: a template that creates MARKER when Ansible renders it.
attack_lookup() { printf "{{ lookup('pipe', 'touch %s') }}" "$1"; }

# attack_pb_job JSON: submit a playbook run with a callback; sets JOB.
attack_pb_job() {
	request POST /api/playbook -H 'Content-Type: application/json' --data-binary "$1"
	expect "templating: submitted" "$CODE" 201
	JOB=$(jq -r '.job_id // empty' "$TMP/body")
}

# attack_inventory_list: ansible-inventory --list output (stdin), comparable:
# unsafe strings as strings, lists sorted, keys sorted.
attack_inventory_list() {
	jq -cS 'walk(if type == "object" and keys == ["__ansible_unsafe"] then .__ansible_unsafe
		elif type == "array" then sort else . end)'
}

# attack_pb_status_is JOB STATUS: the job's callback reports STATUS.
attack_pb_status_is() {
	callbacks_for "$1" | jq -e --arg s "$2" 'select(.path | startswith("/ok/tpl")) | .body.status == $s' >/dev/null
}

# attack_pb_output JOB: the job's callback output lines, one JSON array.
attack_pb_output() {
	callbacks_for "$1" | jq -c 'select(.path | startswith("/ok/tpl")) | .body.output' | tail -n 1
}

attack_templating() {
	local l="templating" m=() i job_vars job_obj job_ini job_nasty out data sent
	for i in 0 1 2 3 4 5 6 7; do m+=("$(attack_marker)"); done
	start_receiver tpl
	# 1. extra vars, printed by the playbook; a key that is a template too.
	attack_pb_job "$(jq -cn --arg g "$(attack_lookup "${m[0]}")" --arg k "$(attack_lookup "${m[1]}")" \
		--arg cb "$RECEIVER/ok/tpl" '{playbook_name: "echo-vars.yml", callback: $cb,
		inventory: {all: {hosts: {localhost: {ansible_connection: "local"}}}},
		extra_vars: {greeting: $g, ($k): "x"}}')"
	job_vars=$JOB
	# 2. an inventory object: a host var printed, a connection var never used,
	#    a group name and a host name.
	attack_pb_job "$(jq -cn --arg c "$(attack_lookup "${m[2]}")" --arg n "$(attack_lookup "${m[3]}")" \
		--arg gr "$(attack_lookup "${m[4]}")" --arg cb "$RECEIVER/ok/tpl" '{playbook_name: "echo-vars.yml",
		callback: $cb, inventory: {all: {hosts: {localhost: {ansible_connection: "local", color: $c}}},
		($gr): {hosts: {localhost: null}}, other: {hosts: {nohost: {ansible_connection: $n}}}}}')"
	job_obj=$JOB
	# 3. an ini string inventory: a become user never used, a var printed.
	attack_pb_job "$(jq -cn --arg b "$(attack_lookup "${m[5]}")" --arg c "$(attack_lookup "${m[6]}")" \
		--arg cb "$RECEIVER/ok/tpl" '{playbook_name: "echo-vars.yml", callback: $cb,
		inventory: ("localhost ansible_connection=local ansible_become_user=\"" + $b + "\" color=\"" + $c + "\"\n")}')"
	job_ini=$JOB
	# 4. strings built to break out of a quoted scalar, as keys and values.
	data=$(jq -cn --arg t "$(attack_lookup "${m[7]}")" '{
		quote: "a\"b", backslash: "a\\b\\\\", "\"}: {evil": $t, newline: "a\nb\r\nc", tab: "a\tb",
		controls: "\u0001\u001f\u007f", separators: "\u0085\u2028\u2029\ufeff", astral: "\ud83d\ude00",
		tag: "!unsafe \"x\"", yaml: "- a: [b, {c: d}] # e", anchor: "&a *a", bang: "!!python/object:os.system",
		template_key: {($t): [$t, 1, 1.5, true, null, -0.25, 1e300]},
		long: ("k" * 3000), (("q" * 2000) + "\\\""): "long key", empty: "", "": "empty key",
		numbers: [0, -1, 3000000000, 12345.5, 1e-7], nested: [[[{}]], []]}')
	attack_pb_job "$(jq -cn --argjson d "$data" --arg dest "$TMP/attack-tpl-data.json" \
		--arg cb "$RECEIVER/ok/tpl" '{playbook_name: "echo-vars.yml", callback: $cb,
		inventory: {all: {hosts: {localhost: {ansible_connection: "local"}}}},
		extra_vars: {data: $d, dest: $dest}}')"
	job_nasty=$JOB
	for job in "$job_vars" "$job_obj" "$job_ini" "$job_nasty"; do
		check "$l: callback for $job" wait_for 90 has_callbacks "$job"
	done
	for i in "${!m[@]}"; do
		check "$l: vector $i: nothing ran" [ ! -e "${m[$i]}" ]
	done
	out=$(attack_pb_output "$job_vars")
	check "$l: extra var printed verbatim" jq -e --arg g "$(attack_lookup "${m[0]}")" \
		'any(contains("greeting=[" + $g + "]"))' <<<"$out"
	out=$(attack_pb_output "$job_obj")
	check "$l: host var printed verbatim" jq -e --arg c "$(attack_lookup "${m[2]}")" \
		'any(contains("color=[" + $c + "]"))' <<<"$out"
	check "$l: group name printed verbatim" jq -e --arg g "$(attack_lookup "${m[4]}")" \
		'any(contains($g))' <<<"$out"
	check "$l: connection var reached Ansible as text" jq -e --arg n "$(attack_lookup "${m[3]}")" \
		'any(contains($n))' <<<"$out"
	out=$(attack_pb_output "$job_ini")
	check "$l: ini host var printed verbatim" jq -e --arg c "$(attack_lookup "${m[6]}")" \
		'any(contains("color=[" + $c + "]"))' <<<"$out"
	check "$l: ini run succeeded" attack_pb_status_is "$job_ini" successful
	check "$l: nasty strings: run succeeded" attack_pb_status_is "$job_nasty" successful
	check "$l: nasty strings arrive verbatim" jq -e --argjson d "$data" '. == $d' "$TMP/attack-tpl-data.json"
}

# --- a full state directory (issue 17, item 3): a small tmpfs the test mounts ---

# attack_fill DIR [KIB]: fill the file system of DIR to the last byte, or with KIB KiB.
attack_fill() { dd if=/dev/zero of="$1/filler" bs=1k ${2:+count=$2} status=none 2>/dev/null; }

# attack_dead PID: at one look, the process is gone or a zombie (for wait_for).
attack_dead() {
	local state
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)
	[ -z "$state" ] || [ "$state" = Z ]
}

# attack_callback_count JOB: how many callbacks the receiver got for it.
attack_callback_count() { callbacks_for "$1" | wc -l | tr -d ' '; }

# attack_state_files DIR: the names in DIR/jobs, sorted, on one line.
attack_state_files() { ls "$1/jobs" | sort | tr '\n' ' '; }

# A result that cannot be recorded is never announced, then contradicted.
attack_full_result() {
	local mnt=$1 l="full state dir: result"
	attack_fill "$mnt" 3072  # 1 MiB left: room for small records, not for 2 MB of output
	submit big-output '["2000000"]' "$RECEIVER/ok/full-result"
	expect "$l: 201" "$CODE" 201
	sleep 3
	expect "$l: no callback while the result cannot be recorded" "$(attack_callback_count "$JOB")" 0
	request GET "/api/jobs/$JOB"
	jqcheck "$l: GET while full: not lost (its runner keeps its lock)" '.status == "running"'
	request GET "/api/jobs/$JOB"
	expect "$l: still no callback after GETs" "$(attack_callback_count "$JOB")" 0
	check "$l: the failed write is logged" grep -q "job $JOB: cannot record" "$TMP/attack-full.log"
	rm -f "$mnt/filler"
	check "$l: room again: the callback goes out" wait_for 60 has_callbacks "$JOB"
	check "$l: recorded successful" wait_for 5 job_status_is "$JOB" successful
	request GET "/api/jobs/$JOB"
	sleep 1
	expect "$l: exactly one callback" "$(attack_callback_count "$JOB")" 1
	check "$l: the callback says success" callbacks_say "$JOB" '.body.result.return_code == 0'
}

# A DELETE while the runner retries recording its result: it stops retrying
# and ends without a callback; once there is room the job is lost, with one
# failure callback.
attack_full_cancel() {
	local mnt=$1 l="full state dir: DELETE while retrying" runner avail
	avail=$(df -k --output=avail "$mnt" | tail -n 1 | tr -d ' ')
	attack_fill "$mnt" $((avail - 1024))  # room for small records, not for 2 MB of output
	submit big-output '["2000000"]' "$RECEIVER/ok/full-cancel"
	expect "$l: 201" "$CODE" 201
	check "$l: the write fails" wait_for 20 grep -q "job $JOB: cannot record successful" "$TMP/attack-full.log"
	runner=$(runner_of "$JOB")
	request DELETE "/api/jobs/$JOB"
	expect "$l: 202" "$CODE" 202
	check "$l: the runner stops" wait_for 10 attack_dead "$runner"
	check "$l: and says so" grep -q "job $JOB: gave up recording successful" "$TMP/attack-full.log"
	expect "$l: no callback" "$(attack_callback_count "$JOB")" 0
	rm -f "$mnt/filler"
	request GET "/api/jobs/$JOB"
	jqcheck "$l: room again: lost" '.status == "lost"'
	check "$l: its failure callback" wait_for 10 has_callbacks "$JOB"
	sleep 1
	expect "$l: exactly one callback" "$(attack_callback_count "$JOB")" 1
	check "$l: which says failure" callbacks_say "$JOB" '.body.result.return_code == -1'
}

# A settle that cannot record lost sends nothing; once it can, one failure
# callback. The job is queued (one slot, taken), so its lost record needs a
# new file (its spare), which a full file system refuses.
attack_full_settle() {
	local mnt=$1 l="full state dir: settle" runner blocker
	submit sleep-echo '["30"]'
	blocker=$JOB
	check "$l: the slot taken" wait_for 5 job_status_is "$blocker" running
	submit sleep-echo '["1"]' "$RECEIVER/ok/full-settle"
	check "$l: queued" job_status_is "$JOB" queued
	runner=$(runner_of "$JOB")
	kill -KILL "$runner"
	check "$l: runner gone" gone "$runner"
	attack_fill "$mnt"
	request GET "/api/jobs/$JOB"
	request GET "/api/jobs/$JOB"
	sleep 2
	expect "$l: lost cannot be recorded: no callback" "$(attack_callback_count "$JOB")" 0
	check "$l: the failed write is logged" grep -q "job $JOB: cannot record lost" "$TMP/attack-full.log"
	rm -f "$mnt/filler"
	check "$l: room again: lost" job_status_is "$JOB" lost
	check "$l: its failure callback" wait_for 10 has_callbacks "$JOB"
	request GET "/api/jobs/$JOB"
	sleep 1
	expect "$l: exactly one callback" "$(attack_callback_count "$JOB")" 1
	request DELETE "/api/jobs/$blocker"
	expect "$l: the blocker canceled" "$CODE" 202
	check "$l: the blocker's record says so" wait_for 10 job_status_is "$blocker" canceled
	sleep 1  # its runner empties its spare last
}

# A submission the state directory cannot take: 500, and no file left behind.
attack_full_submit() {
	local mnt=$1 l="full state dir: submission" before
	attack_fill "$mnt"
	before=$(attack_state_files "$mnt")
	submit echo-args '["no room"]' "$RECEIVER/ok/full-submit"
	expect "$l: 500" "$CODE" 500
	expect "$l: no file left behind" "$(attack_state_files "$mnt")" "$before"
	rm -f "$mnt/filler"
	submit echo-args '["room"]'
	expect "$l: room again: 201" "$CODE" 201
}

# A GET whose private copy fails half way (the disk fills) copies again into
# memory from the record's start: the whole record, its password masked.
attack_full_snapshot() {
	local mnt=$1 l="full state dir: GET's copy" avail
	submit big-output '["1000000"]' "${RECEIVER/http:\/\//http://user:pa55word@}/ok/full-snapshot"
	check "$l: recorded" wait_for 30 job_status_is "$JOB" successful
	sleep 1  # its runner empties its spare last
	avail=$(df -k --output=avail "$mnt" | tail -n 1 | tr -d ' ')
	attack_fill "$mnt" $((avail - 512))  # room for half the copy
	request GET "/api/jobs/$JOB"
	expect "$l: 200" "$CODE" 200
	jqcheck "$l: the whole output" '.result.output | length == 1000000'
	jqcheck "$l: the password masked" '.callback.url | test("user:[*]{3}@")'
	check "$l: nowhere in the body" attack_lacks "$(cat "$TMP/body")" pa55word
	rm -f "$mnt/filler"
}

# The full state directory attacks: test.sh's section "fulldisk".
suite_attack_full_disk() {
	local mnt="$TMP/attack-full-state" lock pid
	if [ "$(id -u)" != 0 ]; then
		echo "SKIP: full state directory: mounting a tmpfs needs root"
		skipped=$((skipped + 1))
		return
	fi
	mkdir -p "$mnt"
	mount -t tmpfs -o size=4m,mode=0750 tmpfs "$mnt" || { fail "full state dir: mount a tmpfs"; return; }
	mkdir -p "$mnt/jobs" "$mnt/slots"
	STATE=$mnt
	start_receiver full
	start_server attack-full inetd "${common[@]}" LSO_STATE_DIR="$mnt" EXECUTABLE_TIMEOUT_SEC=40 \
		LSO_MAX_OUTPUT_BYTES=4000000 MAX_THREAD_POOL_WORKERS=1
	attack_full_result "$mnt"
	attack_full_cancel "$mnt"
	attack_full_settle "$mnt"
	attack_full_submit "$mnt"
	attack_full_snapshot "$mnt"
	sleep 1
	# A runner still retrying (a check above failed) would retry forever: none outlives the suite.
	for lock in "$mnt"/jobs/*.lock; do
		pid=$(cut -d ' ' -f 1 "$lock" 2>/dev/null)
		[ -n "$pid" ] && [ "$pid" -gt 1 ] 2>/dev/null && kill -KILL "$pid" 2>/dev/null
	done
	umount -l "$mnt"
	check "full state dir: no lso crashed or failed" bash -c "! grep -hE 'died with (code [1-9]|signal)|Sanitizer|runtime error' $TMP/attack-full.log"
}

# --- duplicate keys: the last one counts, as for Ansible and pydantic ---

# playbook_post JSON: POST /api/playbook.
attack_playbook_post() { request POST /api/playbook -H 'Content-Type: application/json' --data-binary "$1"; }

attack_duplicates() {
	start_server attack-dups inetd "${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_ROOT" \
		LSO_STATE_DIR="$TMP/attack-dups-state" ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks"
	attack_playbook_post '{"playbook_name":"pass.yml","inventory":{"all":{"hosts":{"localhost":null},"hosts":["localhost"]}}}'
	expect "duplicate hosts: the last, a list, is refused" "$CODE" 422
	jqcheck "duplicate hosts: Ansible's message" '.detail.messages[0] | contains("Invalid \"hosts\" entry for \"all\" group, requires a dictionary")'
	attack_playbook_post '{"playbook_name":"pass.yml","inventory":{"web":{"hosts":{"w1":null},"hosts":{"w2":null}},"db":{"hosts":[1]}}}'
	jqcheck "duplicate hosts: what was read is the last" '.detail.parsed_hosts == ["w2"]'
	attack_playbook_post '{"playbook_name":"pass.yml","inventory":{"all":{"vars":{"a":1},"hosts":5,"vars":{"b":2},"hosts":{"localhost":null}}}}'
	expect "duplicate hosts: the last, a dict, is taken" "$CODE" 201
	attack_playbook_post '{"playbook_name":"pass.yml","inventory":{"all":{"hosts":{"localhost":null}},"all":{"children":5}}}'
	expect "duplicate group: the last is checked" "$CODE" 422
	attack_playbook_post '{"playbook_name":"pass.yml","playbook_name":"no such.yml","inventory":"localhost\n"}'
	expect "duplicate playbook_name: the last is checked" "$CODE" 422
	execute '{"executable_name":"echo-args","args":["first"],"is_async":false,"args":["last"]}'
	jqcheck "duplicate args: the last" '.result.output == "last\n"'
}

# --- what runs is what was checked: a folder swapped on the path ---

# A root whose folder d holds harmless programs, and a link x to an outside
# folder d whose programs of the same names create their first argument.
attack_race_setup() {
	ATTACK_RACE="$TMP/attack-race"
	rm -rf "$ATTACK_RACE"
	mkdir -p "$ATTACK_RACE/root/d" "$ATTACK_RACE/outside/d" "$ATTACK_RACE/markers"
	printf '#!/bin/sh\nexit 0\n' >"$ATTACK_RACE/root/d/script"
	printf '#!/bin/sh\ntouch "$1"\n' >"$ATTACK_RACE/outside/d/script"
	chmod +x "$ATTACK_RACE/root/d/script" "$ATTACK_RACE/outside/d/script"
	cp /usr/bin/true "$ATTACK_RACE/root/d/elf"
	cp /usr/bin/touch "$ATTACK_RACE/outside/d/elf"
	cp /usr/bin/ls "$ATTACK_RACE/root/ls"
	ln -s "$ATTACK_RACE/outside/d" "$ATTACK_RACE/root/x"
}

# attack_race KIND RUNS: RUNS sync runs of d/KIND while d and x are swapped.
attack_race() {
	local kind=$1 runs=$2 out n ran refused other outside
	rm -rf "$ATTACK_RACE/markers" && mkdir -p "$ATTACK_RACE/markers"
	out=$(python3 "$TOP/tests/race.py" "$PORT" "$ATTACK_RACE/root" "$kind" "$runs" "$ATTACK_RACE/markers")
	echo "   race, $kind: $out"
	read -r n ran refused other outside < <(sed -E 's/[a-z]+=//g' <<<"$out")
	expect "race, $kind: every run answered" "$n" "$runs"
	expect "race, $kind: the outside program ran 0 times" "$outside" 0
	expect "race, $kind: only runs and refusals" "$other" 0
	check "race, $kind: the inside program did run ($ran, $refused refused)" [ "${ran:-0}" -gt 0 ]
}

attack_races() {
	attack_race_setup
	start_server attack-race inetd "${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_RACE/root" \
		LSO_STATE_DIR="$TMP/attack-race-state"
	execute '{"executable_name":"d/script","args":["'"$ATTACK_RACE/markers/control"'"]}'
	expect "race: control: the inside script runs" "$CODE" 201
	attack_race script "${ATTACK_RACE_RUNS:-2000}"
	attack_race elf "${ATTACK_RACE_RUNS:-2000}"
	# An ELF program gets the checked file close-on-exec: nothing beyond 0-2 (ls's own 3).
	execute '{"executable_name":"ls","args":["/proc/self/fd"],"is_async":false}'
	jqcheck "race: an ELF program inherits 0-2 only" '.result.output == "0\n1\n2\n3\n"'
}

# --- the suite ---

suite_attack() {
	local state="$TMP/attack-state"
	attack_setup_root

	echo "== attack: bad input"
	start_server attack-input fd3 "${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_ROOT" \
		LSO_STATE_DIR="$state" LSO_MAX_BODY_BYTES=8000000
	attack_paths
	attack_nul
	attack_huge
	attack_argv
	attack_headers
	attack_garbage
	attack_rfc9112
	attack_smuggling

	echo "== attack: limits, slow and vanishing clients"
	start_server attack-limits inetd "${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_ROOT" \
		LSO_STATE_DIR="$state" LSO_MAX_BODY_BYTES=1000 LSO_READ_TIMEOUT_SEC=3
	attack_body_limits
	attack_slow
	attack_vanish_request
	start_server attack-vanish inetd "${common[@]}" LSO_STATE_DIR="$state" \
		EXECUTABLE_TIMEOUT_SEC=10 LSO_READ_TIMEOUT_SEC=2 LSO_MAX_OUTPUT_BYTES=30000000
	attack_vanish_response

	echo "== attack: hostile programs"
	start_server attack-hostile fd3 "${common[@]}" LSO_STATE_DIR="$state" \
		EXECUTABLE_TIMEOUT_SEC=3 LSO_MAX_OUTPUT_BYTES=1000000
	attack_flood
	attack_stderr_first
	attack_close_stdout
	attack_daemon
	attack_ignore_term
	attack_fork_many

	echo "== attack: a folder swapped between check and exec"
	attack_races

	echo "== attack: duplicate keys"
	attack_duplicates

	echo "== attack: authentication"
	local auth_env=("${common[@]}" EXECUTABLES_ROOT_DIR="$ATTACK_ROOT" LSO_STATE_DIR="$TMP/attack-auth-state")
	start_server attack-auth inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=true LSO_API_KEY=s3cret \
		CREDENTIALS_DIRECTORY="$TMP/attack-cred"
	attack_auth "LSO_API_KEY"
	start_server attack-cred fd3 "${auth_env[@]}" LSO_OAUTH2_ACTIVE=True CREDENTIALS_DIRECTORY="$TMP/attack-cred"
	attack_auth "credential"
	# The key alone, auth off: nothing changes (as upstream).
	start_server attack-keyonly inetd "${auth_env[@]}" LSO_API_KEY=s3cret
	request GET /api/version
	expect "key alone: /api/version open" "$CODE" 200
	m=$(attack_marker)
	execute "$(attack_json marker "$m")"
	expect "key alone: execute open" "$CODE" 201
	start_server attack-off inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=off LSO_API_KEY=s3cret
	execute "$(attack_json marker "$(attack_marker)")"
	expect "LSO_OAUTH2_ACTIVE=off: open" "$CODE" 201
	start_server attack-badflag inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=maybe LSO_API_KEY=s3cret
	execute "$(attack_json marker "$(attack_marker)")" -H 'Authorization: Bearer s3cret'
	expect "LSO_OAUTH2_ACTIVE=maybe: 500, never open" "$CODE" 500
	check "LSO_OAUTH2_ACTIVE=maybe: the log names it" grep -q 'LSO_OAUTH2_ACTIVE is malformed' "$TMP/attack-badflag.log"
	# On, but no usable key: fail closed.
	local bad="$TMP/attack-badcred"
	mkdir -p "$bad/empty" "$bad/dir/lso-api-key" "$bad/blank" "$bad/none" "$bad/long" "$bad/crlf"
	: >"$bad/empty/lso-api-key"
	printf '\ns3cret\n' >"$bad/blank/lso-api-key"
	printf '\r\ns3cret\n' >"$bad/crlf/lso-api-key"
	head -c 5000 /dev/zero | tr '\0' k >"$bad/long/lso-api-key"
	SERVER_LOG=attack-nokey
	start_server attack-nokey inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=true
	attack_auth_broken "no key"
	SERVER_LOG=attack-emptykey
	start_server attack-emptykey fd3 "${auth_env[@]}" LSO_OAUTH2_ACTIVE=1 LSO_API_KEY=
	attack_auth_broken "LSO_API_KEY empty"
	for kind in empty dir blank crlf none long nonexistent; do
		SERVER_LOG=attack-cred-$kind
		start_server "attack-cred-$kind" inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=yes \
			CREDENTIALS_DIRECTORY="$bad/$kind"
		attack_auth_broken "credential $kind"
	done
	# An empty LSO_API_KEY is no key either: the credential is read, and it is broken.
	SERVER_LOG=attack-emptyenv-blank
	start_server attack-emptyenv-blank inetd "${auth_env[@]}" LSO_OAUTH2_ACTIVE=true LSO_API_KEY= \
		CREDENTIALS_DIRECTORY="$bad/blank"
	attack_auth_broken "LSO_API_KEY empty, credential blank"
	attack_auth_lazy

	# 78 (EX_CONFIG) is a malformed setting's, answered 500 on purpose (attack-badflag).
	check "attack: no lso crashed or failed" bash -c "! grep -hE 'died with (code [1-9]|signal)' $TMP/attack-*.log | grep -v 'code 78'"
	check "attack: only the malformed setting's lso exited 78" bash -c "! grep -lE 'died with code 78' $TMP/attack-*.log | grep -v attack-badflag"
	check "attack: no sanitizer reports" bash -c "! grep -hE 'Sanitizer|runtime error' $TMP/attack-*.log"
}

# attack_ini_cases: ini inventories Ansible's ini plugin takes, one per record
# (separated by a line "%%"): lso must convert each to the same inventory.
attack_ini_cases() {
	cat <<'INI'
localhost
host2.example.com
%%
localhost
web[1:3].example.com ansible_port=2222 x=10.0.0.1
[db]
db1 ansible_host=10.0.0.5 ansible_user=root flag=True n=-5 f=07.5 s="a b" q='{{ x }}'
[db:vars]
v = "quoted value"
w=plain # not a comment
[all:children]
db
%%
; a comment
	# another, indented

h1 a='x y' b="p\"q\\r" c=p\ q d=e=f  # a comment
h2:2200 t=True f=False nn=None zero=0 big=123456789012345 neg="- 5" pos=+7
h3 date=2024-01-01 ver=1.2.3 path=/usr/bin/python3 hexlike=12h tpl="{{ lookup('pipe', 'id') }}"
h4 jinja="{% if x %}y{% endif %}" cmt="{# c #}" sq="'quoted'" e= sum=1+2 name=x,y
h1 a=again
[p:children]
c
[c]
h3
[c:vars]
k=1
empty=
spaced = two words  
[p]
h5 ansible_connection=local
%%
h6	ansible_host=::1
%%
INI
}

# attack_ini_refused: ini strings lso refuses, one per line (printf escapes)
# with the start of the message wanted, separated by " => ".
attack_ini_refused() {
	cat <<'INI'
h x=[1,2] => Inventory variable x: the value [1,2] is not converted
h x=(1) => Inventory variable x
h x="{'a': 1}" => Inventory variable x
h x=1e5 => Inventory variable x
h x=0x10 => Inventory variable x
h x=1,2 => Inventory variable x
h x=1+2j => Inventory variable x
h x="'a\\\\n'" => Inventory variable x
h x="b'a'" => Inventory variable x
h x=True, => Inventory variable x
[g:vars]\nk=v => Section [g:vars] not valid for undefined group: g
[p:children]\nnone => Section [p:children] includes undefined group: none
[broken\nh => Invalid section entry
[g:bad]\nh => Section [g:bad] has unknown type
h x="unclosed => Error parsing host definition
h: => Invalid host pattern 'h:'
h novalue => Expected key=value host variable assignment, got: novalue
[g:vars]\nnovalue\n[g] => Expected key=value, got: novalue
h x=a\vb => Inventory string holds a control character
h x=a\xe2\x80\xa8b => Inventory string holds a control character or a Unicode line
INI
}

attack_ini_inventory() {
	local l="ini inventory" n=0 jobs=() files=() text want case got
	start_server attack-inventory inetd "${common[@]}" LSO_STATE_DIR="$TMP/attack-pb-state" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" ANSIBLE_PLAYBOOK="$TOP/tests/ansible-inventory-list"
	attack_ini_cases | awk -v dir="$TMP" '/^%%$/ { n++; next } { print > (dir "/attack-ini-" (n + 0)) }'
	for case in "$TMP"/attack-ini-[0-9]*; do
		attack_pb_job "$(jq -cn --rawfile i "$case" --arg cb "$RECEIVER/ok/tpl" \
			'{playbook_name: "pass.yml", callback: $cb, inventory: $i}')"
		jobs+=("$JOB") files+=("$case")
	done
	for i in "${!jobs[@]}"; do
		check "$l: case $i: callback" wait_for 60 has_callbacks "${jobs[$i]}"
		want=$(ansible-inventory -i "${files[$i]}" --list 2>/dev/null | attack_inventory_list)
		got=$(attack_pb_output "${jobs[$i]}" | jq -r 'join("\n")' | attack_inventory_list)
		if [ -n "$want" ] && [ "$want" = "$got" ]; then pass; else
			fail "$l: case $i: as Ansible's ini plugin reads it" "want $want, got $got"; fi
	done
	while IFS= read -r case; do
		n=$((n + 1))
		text=$(printf '%b' "${case% => *}")
		want=${case##* => }
		request POST /api/playbook -H 'Content-Type: application/json' --data-binary \
			"$(jq -cn --arg i "$text" '{playbook_name: "pass.yml", inventory: $i}')"
		expect "$l: refused $n ($text)" "$CODE" 422
		check "$l: refused $n: message" jq -e --arg w "$want" \
			'.detail | .error == "invalid_inventory" and (.messages[0] | startswith($w))' "$TMP/body"
	done < <(attack_ini_refused)
}

# --- a playbook's folder swapped after the 201 (real Ansible) ---

# attack_exchange A B: swap the two names at once (renameat2 RENAME_EXCHANGE).
attack_exchange() {
	python3 -c 'import ctypes, os, sys
if ctypes.CDLL(None).renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2):
    sys.exit(1)' "$1" "$2"
}

# A playbook root whose folder d holds site.yml, with a role and a relative
# include; x links to an outside folder d whose site.yml creates a marker.
attack_pb_swap_setup() {
	local r="$TMP/attack-pbswap"
	rm -rf "$r"
	mkdir -p "$r/root/d/roles/greet/tasks" "$r/root/d/tasks" "$r/outside/d"
	cat >"$r/root/d/site.yml" <<'YML'
- hosts: all
  gather_facts: false
  roles:
    - greet
  tasks:
    - import_tasks: tasks/extra.yml
YML
	printf -- '- debug:\n    msg: "from the role inside"\n' >"$r/root/d/roles/greet/tasks/main.yml"
	printf -- '- debug:\n    msg: "from the include inside"\n' >"$r/root/d/tasks/extra.yml"
	printf -- '- hosts: all\n  gather_facts: false\n  tasks:\n    - file:\n        path: "%s"\n        state: touch\n' \
		"$r/outside-ran" >"$r/outside/d/site.yml"
	ln -s "$r/outside/d" "$r/root/x"
	cp "$TOP/tests/playbooks/slow.yml" "$r/root/slow.yml"
	cp "$r/root/d/site.yml" "$r/root/replaced.yml"
}

# One slot, held by a slow playbook: the next job waits, its folder is swapped
# (or its file replaced) after its 201, then Ansible starts.
attack_pb_swap() {
	local r="$TMP/attack-pbswap" l="playbook swap" inv slow job job2 out
	attack_pb_swap_setup
	start_server attack-pbswap inetd "${common[@]}" LSO_STATE_DIR="$TMP/attack-pbswap-state" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$r/root" ANSIBLE_PLAYBOOK_TIMEOUT_SEC=60 MAX_THREAD_POOL_WORKERS=1
	inv='{"all":{"hosts":{"localhost":{"ansible_connection":"local"}}}}'
	attack_pb_job "$(jq -cn --argjson i "$inv" --arg cb "$RECEIVER/ok/tpl" \
		'{playbook_name: "slow.yml", callback: $cb, inventory: $i, extra_vars: {quiet: 4}}')"
	slow=$JOB
	attack_pb_job "$(jq -cn --argjson i "$inv" --arg cb "$RECEIVER/ok/tpl" \
		'{playbook_name: "d/site.yml", callback: $cb, inventory: $i}')"
	job=$JOB
	check "$l: swapped after the 201" attack_exchange "$r/root/d" "$r/root/x"
	attack_pb_job "$(jq -cn --argjson i "$inv" --arg cb "$RECEIVER/ok/tpl" \
		'{playbook_name: "replaced.yml", callback: $cb, inventory: $i}')"
	job2=$JOB
	cp "$r/outside/d/site.yml" "$r/replacement.yml"
	mv -f "$r/replacement.yml" "$r/root/replaced.yml"
	for j in "$slow" "$job" "$job2"; do
		check "$l: callback for $j" wait_for 120 has_callbacks "$j"
	done
	check "$l: the outside playbook never ran" [ ! -e "$r/outside-ran" ]
	check "$l: the checked playbook ran" attack_pb_status_is "$job" successful
	out=$(attack_pb_output "$job")
	check "$l: its role came from the checked folder" jq -e 'any(contains("from the role inside"))' <<<"$out"
	check "$l: its relative include too" jq -e 'any(contains("from the include inside"))' <<<"$out"
	check "$l: a playbook replaced after its check is not run" attack_pb_status_is "$job2" failed
	check "$l: and the output says so" jq -e 'any(contains("replaced after it was checked"))' \
		<<<"$(attack_pb_output "$job2")"
	attack_exchange "$r/root/d" "$r/root/x"
}

# The templating attacks (real Ansible): test.sh's section "templating".
suite_attack_templating() {
	if ! command -v ansible-playbook >/dev/null; then
		echo "SKIP: templating attacks: ansible-playbook is not installed"
		skipped=$((skipped + 1))
		return
	fi
	# An environment asking for the ini plugin: lso's YAML files are read by the yaml plugin all the same.
	start_server attack-playbook inetd "${common[@]}" LSO_STATE_DIR="$TMP/attack-pb-state" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" ANSIBLE_PLAYBOOK_TIMEOUT_SEC=60 \
		ANSIBLE_INVENTORY_ENABLED=ini
	attack_templating
	attack_ini_inventory
	attack_pb_swap
	check "templating: no lso crashed or failed" bash -c "! grep -hE 'died with (code [1-9]|signal)' $TMP/attack-playbook.log $TMP/attack-inventory.log $TMP/attack-pbswap.log"
	check "templating: no sanitizer reports" bash -c "! grep -hE 'Sanitizer|runtime error' $TMP/attack-playbook.log $TMP/attack-inventory.log $TMP/attack-pbswap.log"
}

# --- dead runners, cancels (test.sh's section "settle") ---
#
# A runner killed like the OOM killer would (SIGKILL, at a random moment) must
# cost its workflow nothing: a sweep (lso --recover, what lso-recover.timer
# runs) settles the job and sends its callback without a GET; a GET resumes a
# callback a runner was still retrying; nothing the job started is left.

# attack_runner JOB: the pid its lock file names, once it names one (empty otherwise).
attack_runner() {
	local pid
	for _ in $(seq 100); do
		read -r pid _ <"$SETTLE_STATE/jobs/$1.lock" 2>/dev/null
		[[ $pid =~ ^[0-9]+$ ]] && { echo "$pid"; return; }
		sleep 0.01
	done
}

# attack_record JOB FILTER: the job's record file (read by the test, not a GET) satisfies the filter.
attack_record() { jq -e "$2" "$SETTLE_STATE/jobs/$1.json" >/dev/null 2>&1; }

# attack_sweeps SECONDS: lso --recover every SECONDS, in the background (as the timer does); sets SWEEPER.
attack_sweeps() {
	(while :; do
		env "${SETTLE_ENV[@]}" "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
		sleep "$1"
	done) &
	SWEEPER=$!
	pids+=($SWEEPER)
}

# attack_delivered JOB: how many callbacks of the job were answered 2xx.
attack_delivered() {
	callbacks_for "$1" | jq -s '[.[] | select(.status < 300)] | length'
}

# attack_all_called JOB...: every job's callback was answered 2xx at least once.
attack_all_called() {
	local j
	for j in "$@"; do
		[ "$(attack_delivered "$j")" -ge 1 ] || return 1
	done
}

# A runner killed during a retry's backoff: a GET resumes the callback.
attack_backoff_resume() {
	local l="killed in backoff" runner
	submit echo-args '["backoff"]' "$RECEIVER/flaky/backoff"
	check "$l: first attempt recorded" wait_for 10 attack_record "$JOB" '.callback.attempts == 1'
	runner=$(attack_runner "$JOB")
	kill -KILL "$runner"
	check "$l: runner gone" gone "$runner"
	request GET "/api/jobs/$JOB"
	jqcheck "$l: still successful" '.status == "successful"'
	check "$l: a GET resumes the callback" wait_for 10 has_callbacks "$JOB" 3
	check "$l: delivered, attempts counted on" wait_for 5 attack_record "$JOB" \
		'.callback.delivered and .callback.attempts == 3'
	expect "$l: delivered once" "$(attack_delivered "$JOB")" 1
}

# A lost job's leftovers, also one that left the program's group and session.
attack_setsid_leftover() {
	local l="setsid escapee" runner escapee
	submit setsid-sleeper "[\"$TMP/attack-escapee.pid\"]" "$RECEIVER/ok/escapee"
	check "$l: started" wait_for 5 test -s "$TMP/attack-escapee.pid"
	escapee=$(cat "$TMP/attack-escapee.pid")
	check "$l: in a session of its own" bash -c "[ \"\$(ps -o sid= -p $escapee)\" -eq $escapee ]"
	runner=$(attack_runner "$JOB")
	kill -KILL "$runner"
	gone "$runner"
	check "$l: lost" job_status_is "$JOB" lost
	check "$l: killed" gone "$escapee"
	check "$l: callback" wait_for 5 has_callbacks "$JOB"
}

# The process a GET starts to deliver a lost job's callback holds no socket of the client's.
attack_get_delivery_fds() {
	local l="GET's delivery process" runner delivery port
	port=$(free_port)  # nobody listens: every attempt is refused, retried after a backoff
	submit sleep-echo '["30"]' "http://127.0.0.1:$port/ok/nobody"
	check "$l: running first" wait_for 5 job_status_is "$JOB" running
	runner=$(attack_runner "$JOB")
	kill -KILL "$runner"
	gone "$runner"
	request GET "/api/jobs/$JOB"
	jqcheck "$l: the GET settles it" '.status == "lost"'
	check "$l: a process delivers" wait_for 5 bash -c "read -r p _ <'$SETTLE_STATE/jobs/$JOB.lock' && [ \"\$p\" != $runner ]"
	delivery=$(attack_runner "$JOB")
	# Between its attempts (each one's own socket closed, a backoff of seconds) it holds none.
	local failed_before=$failed
	check "$l: it holds no socket" wait_for 5 holds_no_socket "$delivery"
	[ "$failed" = "$failed_before" ] ||
		echo "   $l: pid $delivery ($(tr '\0' ' ' </proc/"$delivery"/cmdline 2>/dev/null)): $(ls -l /proc/"$delivery"/fd 2>&1 | tail -n +2 | awk '{print $(NF-2), $NF}' | tr '\n' ' ')"
	kill -KILL "$delivery"
}

# A callback URL's password is never shown, nor logged; the callback still goes out with it.
attack_callback_password() {
	local l="callback password"
	submit echo-args '["secret url"]' "${RECEIVER/http:\/\//http://user:pa55word@}/ok/password"
	check "$l: delivered" wait_for 5 has_callbacks "$JOB"
	check "$l: recorded" wait_for 5 job_status_is "$JOB" successful
	jqcheck "$l: GET shows no password" ".callback.url == \"${RECEIVER/http:\/\//http://user:***@}/ok/password\""
	check "$l: nor anywhere in the body" attack_lacks "$(cat "$TMP/body")" pa55word
	request DELETE "/api/jobs/$JOB"
	check "$l: nor in DELETE's answer" attack_lacks "$(cat "$TMP/body")" pa55word
	check "$l: nor in the log" attack_lacks "$(cat "$TMP/attack-settle.log")" pa55word
	# The URL forms without "//" (http:h, http:///h) hide a password just as well.
	for url in "${RECEIVER/http:\/\//http:user:s3cr3t@}/ok/pw-noslash" \
		"${RECEIVER/http:\/\//http:\/\/\/user:s3cr3t@}/ok/pw-slashes"; do
		submit echo-args '["secret url"]' "$url"
		expect "$l: ${url%%user*}…: 201" "$CODE" 201
		check "$l: ${url%%user*}…: recorded" wait_for 10 attack_record "$JOB" '.status != "running" and .status != "queued"'
		request GET "/api/jobs/$JOB"
		check "$l: ${url%%user*}…: GET shows no password" attack_lacks "$(cat "$TMP/body")" s3cr3t
		jqcheck "$l: ${url%%user*}…: masked" '.callback.url | contains("user:***@")'
	done
	# A quote or a backslash in the URL is refused: the record holds URLs verbatim.
	for url in "http://user:se\"cret@127.0.0.1/x" 'http://user:se\cret@127.0.0.1/x'; do
		execute "$(jq -nc --arg u "$url" '{executable_name: "echo-args", args: [], callback: $u}')"
		expect "$l: $url: 422" "$CODE" 422
		jqcheck "$l: $url: url_parsing" '.detail[0].type == "url_parsing"'
	done
}

# A record the state directory cannot give (a directory: read(2) answers
# EISDIR), or one that is not JSON, is a server error for GET and DELETE
# alike, logged; not a missing job.
attack_get_unreadable() {
	local id=00000000-0000-4000-8000-00000000dead l method record logged
	for record in directory "not JSON"; do
		for method in GET DELETE; do
			l="unreadable record ($record), $method"
			if [ "$record" = directory ]; then mkdir "$SETTLE_STATE/jobs/$id.json"; else
				printf '{"job_id": "%s", "status": "running", trunc' "$id" >"$SETTLE_STATE/jobs/$id.json"; fi
			logged=$(grep -c "lso: job $id: cannot read its record in $SETTLE_STATE: " "$TMP/attack-settle.log")
			request "$method" "/api/jobs/$id"
			expect "$l: 500" "$CODE" 500
			jqcheck "$l: says why" '.detail | startswith("Cannot read the job'"'"'s record: ")'
			check "$l: logged" wait_for 5 eval "[ \$(grep -c 'lso: job $id: cannot read its record in $SETTLE_STATE: ' '$TMP/attack-settle.log') = $((logged + 1)) ]"
			rm -rf "$SETTLE_STATE/jobs/$id.json" "$SETTLE_STATE/jobs/$id.lock"
			request "$method" "/api/jobs/$id"
			expect "$l: gone: 404" "$CODE" 404
		done
	done
}

# Queue tickets that cannot be taken (open(2) answers EISDIR, not "held") are
# no free place: the job is refused with 500, not admitted uncounted.
attack_admit_unreadable() {
	local l="uncountable queue" n
	rm -f "$SETTLE_STATE"/slots/queued-*
	for n in $(seq 0 63); do mkdir "$SETTLE_STATE/slots/queued-$n"; done  # LSO_MAX_QUEUED's default
	submit echo-args '["uncounted"]'
	expect "$l: 500" "$CODE" 500
	jqcheck "$l: says why" '.detail | startswith("Cannot record the job: ")'
	rmdir "$SETTLE_STATE"/slots/queued-*
	submit echo-args '["counted"]'
	expect "$l: tickets again: 201" "$CODE" 201
	check "$l: and it runs" wait_for 10 job_status_is "$JOB" successful
}

# DELETE right after the 201, many times: canceled, with its callback, every time.
attack_cancel_at_once() {
	local l="cancel at once" n=${1:-100} jobs=() codes=() j bad=0 missing=0
	for i in $(seq "$n"); do
		submit sleep-echo '["20"]' "$RECEIVER/ok/cancel-at-once"
		jobs+=("$JOB")
		request DELETE "/api/jobs/$JOB"
		codes+=("$CODE")
	done
	expect "$l: $n DELETEs answered 202" "$(printf '%s\n' "${codes[@]}" | sort | uniq -c | tr -s ' ')" " $n 202"
	check "$l: every callback arrives" wait_for 60 attack_all_called "${jobs[@]}"
	for j in "${jobs[@]}"; do
		attack_record "$j" '.status == "canceled"' || bad=$((bad + 1))
		callbacks_for "$j" | jq -e '.body.result.output | endswith("Execution canceled.")' >/dev/null ||
			missing=$((missing + 1))
	done
	expect "$l: all $n canceled" "$bad" 0
	expect "$l: all $n callbacks say canceled" "$missing" 0
	echo "   cancel at once: $n DELETEs, $((n - bad)) canceled, $((n - missing)) canceled callbacks"
}

# A job its instance could not detach is run by that instance: a DELETE while
# it waits for the only slot still wins (202, canceled, its program never
# started), whether the fork failed (an LD_PRELOAD'ed fork that answers
# EAGAIN) or the scope could not be had (INVOCATION_ID without a system bus:
# the job's process stays in the instance, which waits for it). A GET there
# that settles a lost job is answered: the delivery is left for later.
attack_cancel_undetached() {
	local l state="$TMP/attack-undetached-state" lib="$TMP/attack-nofork" first marker how slot_port env
	local SETTLE_STATE="$TMP/attack-undetached-state" settle_port=$PORT  # attack_record reads this one
	mkdir -p "$lib"
	# The first fork of the process fails: the detach (the program's own fork goes through).
	cat >"$lib/nofork.c" <<-'EOF'
	#define _GNU_SOURCE
	#include <dlfcn.h>
	#include <errno.h>
	#include <stdlib.h>
	#include <unistd.h>
	__attribute__((constructor)) static void keep_to_lso(void) { unsetenv("LD_PRELOAD"); }
	pid_t fork(void)
	{
		static int forks;
		if (forks++ == 0)
			return errno = EAGAIN, -1;
		return ((pid_t (*)(void))dlsym(RTLD_NEXT, "fork"))();
	}
	EOF
	cc -shared -fPIC -o "$lib/nofork.so" "$lib/nofork.c" -ldl || { fail "cancel undetached: build nofork.so"; return; }
	env=("${common[@]}" LSO_STATE_DIR="$state" MAX_THREAD_POOL_WORKERS=1 EXECUTABLE_TIMEOUT_SEC=60)
	start_server attack-slot inetd "${env[@]}"
	slot_port=$PORT
	for how in "no fork" "no scope"; do
		l="cancel undetached ($how)"
		PORT=$slot_port
		submit sleep-echo '["60"]'
		first=$JOB
		check "$l: the only slot is taken" wait_for 10 job_status_is "$first" running
		if [ "$how" = "no fork" ]; then
			start_server attack-nofork inetd "${env[@]}" LD_PRELOAD="$lib/nofork.so" \
				ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
		else
			# Under systemd (INVOCATION_ID) with no bus to ask for a scope, on any machine.
			start_server attack-noscope inetd "${env[@]}" INVOCATION_ID=0123456789abcdef0123456789abcdef \
				DBUS_SYSTEM_BUS_ADDRESS=unix:path=/nonexistent/system_bus_socket
		fi
		marker=$(attack_marker)
		submit marker "[\"$marker\"]" "$RECEIVER/ok/undetached"
		expect "$l: 201" "$CODE" 201
		check "$l: queued" wait_for 10 attack_record "$JOB" '.status == "queued"'
		request DELETE "/api/jobs/$JOB"
		expect "$l: DELETE 202" "$CODE" 202
		PORT=$slot_port
		request DELETE "/api/jobs/$first"
		expect "$l: the slot's job canceled" "$CODE" 202
		check "$l: canceled" wait_for 15 attack_record "$JOB" '.status == "canceled"'
		check "$l: its callback" wait_for 10 has_callbacks "$JOB"
		check "$l: which says canceled" callbacks_say "$JOB" '.body.result.output | endswith("Execution canceled.")'
		check "$l: the program never started" test ! -e "$marker"
	done
	grep -q "cannot detach (Resource temporarily unavailable): running it here" "$TMP/attack-nofork.log" ||
		fail "cancel undetached (no fork): the instance ran the job" "$(tail -n 5 "$TMP/attack-nofork.log")"
	grep -q "stays in this instance, which supervises it: " "$TMP/attack-noscope.log" ||
		fail "cancel undetached (no scope): the job stayed in the instance" "$(tail -n 5 "$TMP/attack-noscope.log")"
	l="lost job, no fork"
	local id=00000000-0000-4000-8000-0000000f0e4c
	jq -cn --arg id "$id" --arg url "$RECEIVER/ok/nofork-lost" '{job_id: $id, kind: "execute",
		status: "running", name: "echo-args", args: [], created_at: "2026-01-01T00:00:00.000Z",
		started_at: null, finished_at: null, result: null,
		callback: {url: $url, attempts: 0, delivered: false, last_error: null}}' >"$state/jobs/$id.json"
	: >"$state/jobs/$id.lock"
	start_server attack-nofork-get inetd "${env[@]}" LD_PRELOAD="$lib/nofork.so" \
		ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"
	request GET "/api/jobs/$id"
	expect "$l: the GET is answered" "$CODE" 200
	jqcheck "$l: lost" '.status == "lost"'
	check "$l: the delivery left for later, said" grep -q "job $id: cannot detach its callback's delivery" "$TMP/attack-nofork-get.log"
	PORT=$slot_port
	request GET "/api/jobs/$id"
	check "$l: the next GET delivers it" wait_for 10 has_callbacks "$id"
	PORT=$settle_port
}

# The issue's experiment: runners SIGKILLed at random moments near their
# program's end (queued, running, recording, calling back, in a retry's
# backoff). No GET: the sweep alone must bring every job its answered
# callback, the real result or "lost", and never both. Delivery is at least
# once: a runner killed after its receiver answered but before it recorded so
# has the same callback sent again (counted, and shown: "resent").
attack_random_kills() {
	local l="random kills" n=${1:-50} jobs=() runner landed=0
	for i in $(seq "$n"); do
		# Half the receivers answer 503 twice first: some kills land in a backoff.
		if [ $((i % 2)) = 0 ]; then path=flaky; else path=ok; fi
		submit sleep-echo '["0.3"]' "$RECEIVER/$path/kill-$i"
		jobs+=("$JOB")
		runner=$(attack_runner "$JOB")
		sleep "0.$((RANDOM % 9))$((RANDOM % 10))"
		[ -n "$runner" ] && kill -KILL "$runner" 2>/dev/null && landed=$((landed + 1))
	done
	check "$l: every job called back, without a GET" wait_for 30 attack_all_called "${jobs[@]}"
	tally_callbacks $'slept 0.3\n' "${jobs[@]}"
	expect "$l: no job without its callback" "$TALLY_NONE" 0
	expect "$l: no job called back with two different results" "$TALLY_CONTRADICTED" 0
	expect "$l: each callback the result or lost" "$((TALLY_REAL + TALLY_LOST))" "$n"
	check "$l: the records agree" bash -c "! grep -lE '\"status\":\"(queued|running)\"' $SETTLE_STATE/jobs/*.json | grep -q ."
	echo "   random kills: $n tried, $landed landed; callbacks: $TALLY_REAL results, $TALLY_LOST lost, $TALLY_NONE missing, $TALLY_RESENT resent, $TALLY_CONTRADICTED contradicted"
}

# lso --recover with many receivers down: the pass ends at once, each delivery goes on in a process of its own.
attack_recover_parallel() {
	local l="recover in parallel" jobs=() runner j held=0 port
	port=$(free_port)
	for i in 1 2 3 4 5 6 7; do
		submit sleep-echo '["30"]' "http://127.0.0.1:$port/ok/down-$i"
		jobs+=("$JOB")
	done
	for j in "${jobs[@]}"; do
		wait_for 5 attack_record "$j" '.status == "running" or .status == "queued"'
		runner=$(attack_runner "$j")
		kill -KILL "$runner"
		gone "$runner"
	done
	env "${SETTLE_ENV[@]}" LSO_CALLBACK_RETRIES=3 "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
	for j in "${jobs[@]}"; do
		attack_record "$j" '.status == "lost"' || fail "$l: $j lost"
		flock -n "$SETTLE_STATE/jobs/$j.lock" true || held=$((held + 1))
	done
	expect "$l: 7 deliveries still retrying after the pass ended" "$held" 7
	start_receiver settle-late "$port"
	check "$l: each delivered once the receiver is up" wait_for 30 attack_all_called "${jobs[@]}"
}

# A delivered callback is never sent again: not by a sweep, nor by a GET.
attack_no_resend() {
	local l="no resend"
	submit echo-args '["once"]' "$RECEIVER/ok/once"
	check "$l: delivered" wait_for 5 attack_record "$JOB" '.callback.delivered'
	wait_for 5 bash -c "flock -n '$SETTLE_STATE/jobs/$JOB.lock' true"
	env "${SETTLE_ENV[@]}" "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
	request GET "/api/jobs/$JOB"
	sleep 1
	expect "$l: one callback" "$(callbacks_for "$JOB" | wc -l | tr -d ' ')" 1
}

# attack_last_body JOB FILTER: the job's last callback received satisfies the filter.
attack_last_body() { callbacks_for "$1" | tail -n 1 | jq -e "$2" >/dev/null; }

# attack_same_body LABEL HOW: the job's callback answered 503 once; its runner
# killed in the backoff; the delivery resumed from the record (HOW: get, a
# GET; recover, lso --recover) until a 200. Every attempt sent the same bytes.
attack_same_body() {
	local l=$1 how=$2 runner n
	check "$l: first attempt recorded" wait_for 20 attack_record "$JOB" '.callback.attempts == 1'
	runner=$(attack_runner "$JOB")
	kill -KILL "$runner"
	check "$l: runner gone" gone "$runner"
	if [ "$how" = get ]; then
		request GET "/api/jobs/$JOB"
	else
		env "${SETTLE_ENV[@]}" "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
	fi
	check "$l: resumed until delivered" wait_for 15 attack_record "$JOB" '.callback.delivered'
	check "$l: 3 attempts" has_callbacks "$JOB" 3
	n=$(callbacks_for "$JOB" | jq -r .raw | sort -u | wc -l)
	expect "$l: a resumed attempt sends the first one's bytes" "$n" 1
}

# A callback resumed from the record (GET, lso --recover) sends what the first
# attempt sent: an output with NULs (cut at the first by a parse of the
# record), and a playbook's failure (its reason lost by a rebuild from the output).
attack_resumed_body() {
	local port=$PORT how
	for how in get recover; do
		submit odd-bytes '[]' "$RECEIVER/flaky/same-$how"
		attack_same_body "NUL output, resumed by $how" "$how"
		check "NUL output, resumed by $how: the output whole, NULs and all" attack_last_body "$JOB" \
			'.body.result.output == "crlf\nlone\ncr bad\ufffdbyte nul\u0000x ctl\u0001y tab\tz \"q\" back\\s"'
	done
	start_server attack-resumed-pb inetd "${SETTLE_ENV[@]}" ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" \
		ANSIBLE_PLAYBOOK=/nonexistent/ansible-playbook LSO_CALLBACK_RETRIES=3
	for how in get recover; do
		request POST /api/playbook -H 'Content-Type: application/json' --data-binary \
			"{\"playbook_name\":\"pass.yml\",\"inventory\":\"localhost\",\"callback\":\"$RECEIVER/flaky/pb-$how\"}"
		JOB=$(jq -r .job_id "$TMP/body")
		attack_same_body "failed playbook, resumed by $how" "$how"
		check "failed playbook, resumed by $how: the failure said" attack_last_body "$JOB" \
			'.body.output == ["Ansible playbook run failed: ansible-playbook not found (ANSIBLE_PLAYBOOK, PATH)"] and .body.return_code == -1 and .body.status == "failed"'
	done
	PORT=$port
}

suite_attack_settle() {
	SETTLE_STATE="$TMP/attack-settle-state"
	SETTLE_ENV=("${common[@]}" LSO_STATE_DIR="$SETTLE_STATE" REQUEST_TIMEOUT_SEC=1)
	start_server attack-settle inetd "${SETTLE_ENV[@]}" EXECUTABLE_TIMEOUT_SEC=60 LSO_CALLBACK_RETRIES=3
	SERVER=attack-settle
	start_receiver settle
	echo "== settle: GET, DELETE and a single lso --recover"
	attack_backoff_resume
	attack_setsid_leftover
	attack_get_delivery_fds
	attack_callback_password
	attack_resumed_body
	attack_get_unreadable
	attack_admit_unreadable
	attack_lost_mark
	attack_unrecordable
	attack_no_resend
	attack_recover_parallel
	attack_sweep_bound
	attack_cancel_at_once "${SETTLE_CANCELS:-100}"
	attack_cancel_undetached
	echo "== settle: random kills, a sweep every second, no GET"
	attack_sweeps 1
	attack_random_kills "${SETTLE_KILLS:-50}"
	kill "$SWEEPER"
	wait "$SWEEPER" 2>/dev/null
	check "settle: nothing of the jobs left running" wait_for 30 no_process_with "LSO_STATE_DIR=$SETTLE_STATE"
	check "settle: no sanitizer reports" bash -c "! grep -hE 'Sanitizer|runtime error' $TMP/attack-settle.log $TMP/attack-sweeps.log"
	attack_no_curl
}

# attack_none_held ID...: no lock of those jobs is held (their deliveries ended).
attack_none_held() {
	local id
	for id in "$@"; do flock -n "$SETTLE_STATE/jobs/$id.lock" true || return 1; done
}

# A result that cannot be recorded for a reason that will not clear (the spare
# is a directory: EISDIR): the runner gives up at once, frees its slot and
# sends nothing; once it can be recorded the job is lost, with one failure callback.
attack_unrecordable() {
	local l="unrecordable result" runner
	submit sleep-echo '["2"]' "$RECEIVER/ok/unrecordable"
	check "$l: running" wait_for 5 job_status_is "$JOB" running
	runner=$(attack_runner "$JOB")
	rm -f "$SETTLE_STATE/jobs/$JOB.next"
	mkdir "$SETTLE_STATE/jobs/$JOB.next"
	check "$l: the runner gives up" wait_for 15 attack_dead "$runner"
	check "$l: and says so" grep -q "job $JOB: gave up recording successful" "$TMP/attack-settle.log"
	expect "$l: no callback" "$(attack_callback_count "$JOB")" 0
	rmdir "$SETTLE_STATE/jobs/$JOB.next"
	request GET "/api/jobs/$JOB"
	jqcheck "$l: then lost" '.status == "lost"'
	check "$l: its failure callback" wait_for 10 has_callbacks "$JOB"
	sleep 1
	expect "$l: exactly one callback" "$(attack_callback_count "$JOB")" 1
	check "$l: which says failure" callbacks_say "$JOB" '.body.result.return_code == -1'
}

# Without libcurl (a libcurl.so.4 lacking its functions comes first), the
# callback fails once, for good: the job is settled, and GETs fork no delivery.
attack_no_curl() {
	local l="no libcurl" lib="$TMP/attack-nocurl-lib" state="$TMP/attack-nocurl-state"
	mkdir -p "$lib"
	cc -shared -o "$lib/libcurl.so.4" -x c /dev/null || { fail "$l: build an empty libcurl.so.4"; return; }
	start_server attack-nocurl inetd "${common[@]}" LSO_STATE_DIR="$state" LD_LIBRARY_PATH="$lib"
	submit echo-args '["no curl"]' "$RECEIVER/ok/nocurl"
	check "$l: recorded" wait_for 10 job_status_is "$JOB" successful
	check "$l: settled for good" wait_for 10 grep -qx settled "$state/jobs/$JOB.lock"
	request GET "/api/jobs/$JOB"
	jqcheck "$l: one failed attempt, saying why" \
		'.callback.attempts == 1 and (.callback.last_error | startswith("cannot load libcurl: "))'
	request GET "/api/jobs/$JOB"
	env "${common[@]}" LSO_STATE_DIR="$state" LD_LIBRARY_PATH="$lib" "$LSO" --recover 2>>"$TMP/attack-nocurl.log"
	sleep 1
	expect "$l: no delivery after GETs and a sweep" "$(grep -c "callback job=$JOB" "$TMP/attack-nocurl.log")" 1
}

# A DELETE's mark whose runner died before taking it goes with the lost job.
attack_lost_mark() {
	local l="lost job's cancel mark" id=00000000-0000-4000-8000-0000000c0ffe
	jq -cn --arg id "$id" '{job_id: $id, kind: "execute", status: "queued", name: "echo-args",
		args: [], created_at: "2026-01-01T00:00:00.000Z", started_at: null, finished_at: null,
		result: null, callback: null}' >"$SETTLE_STATE/jobs/$id.json"
	: >"$SETTLE_STATE/jobs/$id.lock"
	: >"$SETTLE_STATE/jobs/$id.cancel"
	request GET "/api/jobs/$id"
	jqcheck "$l: the GET settles it" '.status == "lost"'
	check "$l: the mark is gone" test ! -e "$SETTLE_STATE/jobs/$id.cancel"
}

# A sweep starts at most 64 deliveries (a process each); the next pass starts the rest.
attack_sweep_bound() {
	local l="sweep bound" n=70 ids=() id delivered lost
	for i in $(seq "$n"); do
		id=$(printf '00000000-0000-4000-8000-%012d' "$i")
		ids+=("$id")
		jq -cn --arg id "$id" --arg url "$RECEIVER/ok/bound-$i" '{job_id: $id, kind: "execute",
			status: "queued", name: "echo-args", args: [], created_at: "2026-01-01T00:00:00.000Z",
			started_at: null, finished_at: null, result: null,
			callback: {url: $url, attempts: 0, delivered: false, last_error: null}}' \
			>"$SETTLE_STATE/jobs/$id.json"
		: >"$SETTLE_STATE/jobs/$id.lock"
	done
	env "${SETTLE_ENV[@]}" "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
	check "$l: the deliveries end" wait_for 30 attack_none_held "${ids[@]}"
	lost=$(cd "$SETTLE_STATE/jobs" && cat "${ids[@]/%/.json}" | jq -s '[.[] | select(.status == "lost")] | length')
	delivered=$(cd "$SETTLE_STATE/jobs" && cat "${ids[@]/%/.json}" | jq -s '[.[] | select(.callback.delivered)] | length')
	expect "$l: one pass settles all $n" "$lost" "$n"
	expect "$l: and starts 64 deliveries" "$delivered" 64
	env "${SETTLE_ENV[@]}" "$LSO" --recover 2>>"$TMP/attack-sweeps.log"
	check "$l: the next pass delivers the rest" wait_for 30 attack_all_called "${ids[@]}"
}

# --- bounded cost per request: test.sh's section "bounds" ---
#
# Whatever a client sends, the lso serving it stays within a named peak RSS
# (measured by /usr/bin/time around each lso: the most any one request
# took), its answers within a named size, and async jobs within a bounded
# number of processes.

# Every bound is over a baseline: the peak RSS of a trivial request (GET
# /api/version) in the same run, lso's own size (its code, libc, cJSON),
# measured first (ATTACK_BASELINE_KIB).
#
# A run, its answer, its record, a GET of it, its callback: the output is
# spooled to a file and streamed in 64 KiB chunks, never held in memory.
# Measured in the plain build: +0.6 MiB for 20 MB of NULs sync, +0.2 for a
# GET of a 16 MiB record, +0.9 for the runner of that job while it retries
# its callback. 4 MiB leaves room for what a build or a libc may add
# (malloc arenas, libcurl loaded by the runner) and fails any copy of the
# 16 MiB output.
ATTACK_RSS_OVER_BASELINE_KIB=4096
# A 1 MiB JSON body: its parsed tree (65536 values at most, some 100 bytes
# each in cJSON), and a 422 echoing the body back: measured +10.5 MiB at most.
# 12 MiB: not a few, the tree's cost; fails a second copy of the tree.
ATTACK_BODY_RSS_OVER_BASELINE_KIB=12288
# A playbook's 1 MiB body: the tree and the body (the above, less the 422),
# its extra vars written to their file as the tree is walked, never as text
# in memory: measured +8.2 MiB (was +11.2 with the YAML text and its copy),
# +6.7 for 1 MiB of ini inventory. 9 MiB fails a copy of the YAML.
ATTACK_PLAYBOOK_RSS_OVER_BASELINE_KIB=9216
# A 422 of a 1 MiB body: 100 items and one saying how many more.
ATTACK_422_MAX_BYTES=65536
# What an answer or record may add to LSO_MAX_OUTPUT_BYTES of output: the
# truncation line, the job's id, name, args and times.
ATTACK_RECORD_EXTRA_BYTES=4096

# attack_rss_after COUNT: the peak RSS (KiB) of the COUNT-th lso started
# (its line in $ATTACK_RSS, which /usr/bin/time writes when it exits).
attack_rss_after() {
	wait_for 30 attack_rss_lines "$1" || { echo -1; return; }
	sed -n "${1}p" "$ATTACK_RSS"
}

# attack_rss_lines COUNT: that many lso have exited (for wait_for: counted at each try).
attack_rss_lines() { [ "$(wc -l <"$ATTACK_RSS" 2>/dev/null)" -ge "$1" ]; } 2>/dev/null

# attack_bounded LABEL KIB MAX: the figure is there and under MAX. Not in the
# sanitizer build (LSO_SAN): there the peak is ASan's (shadow memory, redzones,
# a quarantine that keeps freed memory), not lso's; the plain build's run checks it.
attack_bounded() {
	if [ -n "${LSO_SAN:-}" ]; then
		echo "   $1: peak RSS ${2} KiB, the sanitizer's (bounded in the plain build's run)"
		return
	fi
	check "$1: peak RSS ${2} KiB < baseline $ATTACK_BASELINE_KIB + $3 KiB" \
		attack_within "$2" 1 $((ATTACK_BASELINE_KIB + $3))
}

# attack_baseline: the peak RSS of a trivial request, the next lso measured (ATTACK_BASELINE_KIB).
attack_baseline() {
	request GET /api/version
	expect "baseline: GET /api/version" "$CODE" 200
	ATTACK_BASELINE_KIB=$(attack_rss_after 1)
	check "baseline: measured (${ATTACK_BASELINE_KIB} KiB)" attack_within "$ATTACK_BASELINE_KIB" 1 1048576
}

# attack_runner_hwm JOB: the peak RSS (KiB, VmHWM) so far of the job's runner, alive.
attack_runner_hwm() {
	local pid
	read -r pid _ <"$2/jobs/$1.lock"
	awk '/^VmHWM:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo -1
}

# attack_processes STATE: how many processes carry this state directory in
# their environment (instances, runners, programs: every one of the server's).
attack_processes() {
	grep -lz "^LSO_STATE_DIR=$1\$" /proc/[0-9]*/environ 2>/dev/null | wc -l
}

# attack_processes_within STATE MAX: at most MAX such processes (for wait_for).
attack_processes_within() { attack_within "$(attack_processes "$1")" 1 $(($2 + 1)); }

# attack_finished STATE COUNT STATUS: COUNT records say STATUS (for wait_for).
attack_finished() {
	[ "$(grep -l "^{[^}]*\"status\":\"$3\"" "$1"/jobs/*.json 2>/dev/null | wc -l)" = "$2" ]
}

attack_json_bodies() {
	local n
	# 1 MiB of integers where strings are wanted: one problem each, 524,000 of them.
	python3 -c 'import json, sys
n = (1048576 - 60) // 2
print(json.dumps({"executable_name": "echo-args", "args": [1] * n, "is_async": False},
    separators=(",", ":")), end="")' >"$TMP/attack-ints"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
	n=$(stat -c %s "$TMP/body")
	expect "1 MiB of integers: 422" "$CODE" 422
	check "1 MiB of integers: a 422 of $n bytes (< $ATTACK_422_MAX_BYTES)" attack_within "$n" 1 "$ATTACK_422_MAX_BYTES"
	jqcheck "1 MiB of integers: still pydantic's list of items" \
		'.detail | type == "array" and all(.[]; has("type") and has("loc") and has("msg"))'
	jqcheck "1 MiB of integers: too many values for the tree" \
		'.detail[0].type == "json_invalid" and .detail[0].ctx.error == "Too many values: at most 65536"'
	attack_bounded "1 MiB of integers" "$(attack_rss_after 2)" "$ATTACK_RSS_OVER_BASELINE_KIB"

	# Fewer values than that, each one a problem: 100 listed, the rest counted.
	python3 -c 'import json
print(json.dumps({"executable_name": "echo-args", "args": [1] * 60000, "is_async": False},
    separators=(",", ":")), end="")' >"$TMP/attack-ints"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
	n=$(stat -c %s "$TMP/body")
	expect "60,000 wrong args: 422" "$CODE" 422
	check "60,000 wrong args: a 422 of $n bytes (< $ATTACK_422_MAX_BYTES)" attack_within "$n" 1 "$ATTACK_422_MAX_BYTES"
	jqcheck "60,000 wrong args: 100 items, then one counting the rest" \
		'(.detail | length) == 101 and (.detail[:100] | all(.[]; .type == "string_type")) and
		 .detail[100].type == "too_many_errors" and .detail[100].ctx.omitted == 59900 and
		 .detail[100].loc == ["body"] and .detail[100].input == null'
	attack_bounded "60,000 wrong args" "$(attack_rss_after 3)" "$ATTACK_BODY_RSS_OVER_BASELINE_KIB"
	# The body echoed back whole (a missing name): memory stays bounded too.
	python3 -c 'import json
print(json.dumps({"args": ["x" * 12] * 65000}, separators=(",", ":")), end="")' >"$TMP/attack-ints"
	request POST /api/execute/ -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
	expect "a 1 MiB body without a name: 422" "$CODE" 422
	attack_bounded "a 1 MiB body echoed in the 422" "$(attack_rss_after 4)" "$ATTACK_BODY_RSS_OVER_BASELINE_KIB"
}

attack_escaped_output() {
	local cap=16777216 n id state=$1
	# 20 MB of NUL: 120 MB once escaped; the cap holds for what is sent.
	sync nul-output '["20000000"]'
	n=$(stat -c %s "$TMP/body")
	expect "20 MB of NUL, sync: 201" "$CODE" 201
	check "20 MB of NUL, sync: a response of $n bytes (<= cap + $ATTACK_RECORD_EXTRA_BYTES)" \
		attack_within "$n" "$cap" $((cap + ATTACK_RECORD_EXTRA_BYTES))
	jqcheck "20 MB of NUL, sync: NULs, then the truncation line" \
		'(.result.output | startswith("\u0000\u0000")) and (.result.output | endswith("\n[output truncated at 16777216 bytes]\n"))'
	attack_bounded "20 MB of NUL, sync" "$(attack_rss_after 5)" "$ATTACK_RSS_OVER_BASELINE_KIB"

	# The same async: the record kept 30 days is capped as well.
	execute '{"executable_name":"nul-output","args":["20000000"]}'
	expect "20 MB of NUL, async: 201" "$CODE" 201
	id=$(jq -r .job_id "$TMP/body")
	attack_bounded "20 MB of NUL, async: its submission" "$(attack_rss_after 6)" "$ATTACK_RSS_OVER_BASELINE_KIB"
	check "20 MB of NUL, async: finished" wait_for 30 grep -q '"status":"successful"' "$state/jobs/$id.json"
	check "20 MB of NUL, async: settled for good (nothing to deliver)" \
		wait_for 30 grep -qx settled "$state/jobs/$id.lock"
	n=$(stat -c %s "$state/jobs/$id.json")
	check "20 MB of NUL, async: a record of $n bytes (<= cap + $ATTACK_RECORD_EXTRA_BYTES)" \
		attack_within "$n" "$cap" $((cap + ATTACK_RECORD_EXTRA_BYTES))
	# GET sends it from the file, never loading it.
	request GET "/api/jobs/$id"
	expect "GET of a 16 MiB record: 200" "$CODE" 200
	check "GET of a 16 MiB record: the record's bytes" cmp -s "$TMP/body" "$state/jobs/$id.json"
	attack_bounded "GET of a 16 MiB record" "$(attack_rss_after 7)" "$ATTACK_RSS_OVER_BASELINE_KIB"
	request GET "/api/jobs/$(cat /proc/sys/kernel/random/uuid)"
	expect "GET of no record: 404" "$CODE" 404
	attack_bounded "GET of no record" "$(attack_rss_after 8)" "$ATTACK_RSS_OVER_BASELINE_KIB"
}

# A GET of a final 16 MiB record while its runner still retries the callback
# (its lock held: nothing to settle) reads only the record's status, never
# parses the whole record; the runner, having run, recorded and posted 16 MiB
# of output, holds none of it: measured over a runner's own baseline (libcurl
# loaded: some 8 MiB). Run after attack_escaped_output (its 8 lso).
attack_get_while_delivering() {
	local l="GET of a 16 MiB record, callback retried" state=$1 id runner_baseline runner
	# The runner's own baseline: a job of one line, its callback retried likewise (libcurl loaded).
	execute "{\"executable_name\":\"echo-args\",\"args\":[\"x\"],\"callback\":\"http://127.0.0.1:$(free_port)/ok/nobody\"}"
	id=$(jq -r .job_id "$TMP/body")
	check "runner baseline: a first attempt made" wait_for 30 grep -q '"attempts":[1-9]' "$state/jobs/$id.json"
	runner_baseline=$(attack_runner_hwm "$id" "$state")
	read -r runner _ <"$state/jobs/$id.lock"
	kill -KILL "$runner"
	check "runner baseline: measured (${runner_baseline} KiB)" attack_within "$runner_baseline" 1 1048576
	echo "   runner's peak RSS (KiB): $runner_baseline for one line of output"
	execute "{\"executable_name\":\"nul-output\",\"args\":[\"20000000\"],\"callback\":\"http://127.0.0.1:$(free_port)/ok/nobody\"}"
	expect "$l: 201" "$CODE" 201
	id=$(jq -r .job_id "$TMP/body")
	check "$l: finished" wait_for 30 grep -q '"status":"successful"' "$state/jobs/$id.json"
	check "$l: its runner retries the callback" bash -c "! flock -n '$state/jobs/$id.lock' true"
	check "$l: a first attempt made" wait_for 30 grep -q '"attempts":[1-9]' "$state/jobs/$id.json"
	runner=$(attack_runner_hwm "$id" "$state")
	echo "   runner's peak RSS (KiB): $runner for 16 MiB of output"
	ATTACK_BASELINE_KIB=$runner_baseline attack_bounded "$l: the runner (over the runner's baseline)" \
		"$runner" "$ATTACK_RSS_OVER_BASELINE_KIB"
	check "$l: the POST's lso is measured" wait_for 30 attack_rss_lines 10
	request GET "/api/jobs/$id"
	expect "$l: 200" "$CODE" 200
	attack_bounded "$l" "$(attack_rss_after 11)" "$ATTACK_RSS_OVER_BASELINE_KIB"
}

attack_queue_bound() {
	local state=$1 first codes c201 c503 n id
	# One slot, held by a long job; then 29 more: 5 queue, 24 are refused.
	execute '{"executable_name":"sleep-echo","args":["60"]}'
	first=$(jq -r .job_id "$TMP/body")
	check "queue: the first job runs" wait_for 10 grep -q '"status":"running"' "$state/jobs/$first.json"
	codes=""
	for _ in $(seq 29); do
		execute '{"executable_name":"sleep-echo","args":["0"]}'
		codes+="$CODE "
		[ "$CODE" != 503 ] || cp "$TMP/headers" "$TMP/attack-503-headers"
	done
	c201=$(grep -o 201 <<<"$codes" | wc -l)
	c503=$(grep -o 503 <<<"$codes" | wc -l)
	expect "queue: LSO_MAX_QUEUED=5 jobs queued behind the running one" "$c201" 5
	expect "queue: the other 24 submissions get 503" "$c503" 24
	jqcheck "queue: the 503 says why" '.detail == "Too many jobs queued: 5 are waiting for a worker slot (LSO_MAX_QUEUED)."'
	check "queue: the 503 says when to try again" grep -qi '^Retry-After: 5' "$TMP/attack-503-headers"
	# Runners of 6 jobs, the running program (sh, sleep): 8; instances gone.
	wait_for 5 attack_processes_within "$state" 8
	n=$(attack_processes "$state")
	check "queue: at most 8 processes for 30 submissions (were $n)" attack_within "$n" 1 9
	echo "   30 submissions, 1 slot, LSO_MAX_QUEUED=5: $n processes, $c201 + 1 taken, $c503 refused"
	request DELETE "/api/jobs/$first"
	expect "queue: the long job canceled" "$CODE" 202
	# The queue drains; its tickets come back.
	check "queue: the 5 queued jobs ran" wait_for 30 attack_finished "$state" 5 successful
	execute '{"executable_name":"sleep-echo","args":["0"]}'
	expect "queue: drained, a submission is taken again" "$CODE" 201
	id=$(jq -r .job_id "$TMP/body")
	check "queue: ... and runs" wait_for 10 grep -q '"status":"successful"' "$state/jobs/$id.json"
}

# attack_ini_hosts COUNT [twice]: POST a playbook whose ini inventory has COUNT
# hosts, a short line each (twice: each host again, with another value).
attack_ini_hosts() {
	python3 -c 'import json, sys
n, twice = int(sys.argv[1]), len(sys.argv) > 2
lines = ["h%06d" % i for i in range(n)]
if twice:
    lines = ["h%06d v=1" % i for i in range(n)] + ["h%06d v=2" % i for i in range(n)]
print(json.dumps({"playbook_name": "pass.yml", "inventory": "\n".join(lines)},
    separators=(",", ":")), end="")' "$@" >"$TMP/attack-ints"
	request POST /api/playbook -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
}

# A playbook's 1 MiB of extra vars: turned into YAML without a copy of the tree.
attack_playbook_body() {
	python3 -c 'import json
print(json.dumps({"playbook_name": "pass.yml", "inventory": "localhost", "extra_vars": {"v": ["x" * 12] * 65000}},
    separators=(",", ":")), end="")' >"$TMP/attack-ints"
	request POST /api/playbook -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
	expect "a playbook with 1 MiB of extra vars: 201" "$CODE" 201
	attack_bounded "a playbook with 1 MiB of extra vars" "$(attack_rss_after 2)" "$ATTACK_PLAYBOOK_RSS_OVER_BASELINE_KIB"
	# 1 MiB of ini inventory: a host a line, turned into the inventory object, then YAML.
	python3 -c 'import json
hosts = "\n".join("h%05d a=%s" % (i, "x" * 110) for i in range(1000000 // 120))
print(json.dumps({"playbook_name": "pass.yml", "inventory": hosts}, separators=(",", ":")), end="")' >"$TMP/attack-ints"
	request POST /api/playbook -H 'Content-Type: application/json' --data-binary @"$TMP/attack-ints"
	expect "a playbook with 1 MiB of ini inventory: 201" "$CODE" 201
	attack_bounded "a playbook with 1 MiB of ini inventory" "$(attack_rss_after 3)" "$ATTACK_PLAYBOOK_RSS_OVER_BASELINE_KIB"
	# A host a short line: 115,000 of them in 1 MiB, past the bound on what an ini
	# string may make. Each host was once looked up by walking its group (and
	# again for the 422's list): billions of comparisons, no answer in 30 s.
	attack_ini_hosts 115000
	expect "115,000 ini hosts: 422" "$CODE" 422
	jqcheck "115,000 ini hosts: the bound named" \
		'.detail.messages == ["Inventory string makes more than 32768 hosts, groups and variables; send fewer"]'
	jqcheck "115,000 ini hosts: the hosts read before it, each once, sorted" \
		'.detail.parsed_hosts | length == 32765 and .[0] == "h000000" and . == (unique)'
	attack_bounded "115,000 ini hosts" "$(attack_rss_after 4)" "$ATTACK_BODY_RSS_OVER_BASELINE_KIB"
	# Within the bound, with each host named twice: the last values win, in place.
	attack_ini_hosts 16000 twice
	expect "16,000 ini hosts, each twice: 201" "$CODE" 201
	attack_bounded "16,000 ini hosts, each twice" "$(attack_rss_after 5)" "$ATTACK_BODY_RSS_OVER_BASELINE_KIB"
	echo "   peak RSS per playbook request (KiB): $(tr '\n' ' ' <"$ATTACK_RSS")"
}

# The bounds (test.sh's section "bounds").
suite_attack_bounds() {
	local state="$TMP/attack-bounds-state"
	ATTACK_RSS="$TMP/attack-bounds-rss"
	rm -f "$ATTACK_RSS"
	WRAP=(/usr/bin/time -a -f %M -o "$ATTACK_RSS")
	start_server attack-bounds inetd "${common[@]}" LSO_STATE_DIR="$state" EXECUTABLE_TIMEOUT_SEC=30
	WRAP=()
	attack_baseline
	attack_json_bodies
	attack_escaped_output "$state"
	attack_get_while_delivering "$state"
	echo "   peak RSS per request (KiB): $(tr '\n' ' ' <"$ATTACK_RSS")"

	# The job runs /bin/true for ansible-playbook: only the submission is measured.
	ATTACK_RSS="$TMP/attack-playbook-rss"
	rm -f "$ATTACK_RSS"
	WRAP=(/usr/bin/time -a -f %M -o "$ATTACK_RSS")
	start_server attack-pb-bounds inetd "${common[@]}" LSO_STATE_DIR="$TMP/attack-pb-bounds-state" \
		ANSIBLE_PLAYBOOKS_ROOT_DIR="$TOP/tests/playbooks" ANSIBLE_PLAYBOOK=/bin/true
	WRAP=()
	attack_baseline
	attack_playbook_body

	state="$TMP/attack-queue-state"
	start_server attack-queue inetd "${common[@]}" LSO_STATE_DIR="$state" EXECUTABLE_TIMEOUT_SEC=90 \
		MAX_THREAD_POOL_WORKERS=1 LSO_MAX_QUEUED=5
	attack_queue_bound "$state"
	local logs="$TMP/attack-bounds.log $TMP/attack-pb-bounds.log $TMP/attack-queue.log"
	check "bounds: no lso crashed or failed" bash -c "! grep -hE 'died with (code [1-9]|signal)' $logs"
	check "bounds: no sanitizer reports" bash -c "! grep -hE 'Sanitizer|runtime error' $logs"
}
