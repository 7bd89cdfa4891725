#!/usr/bin/env bash
# tests/package.sh [PART...]: lso as people install it. PARTs (default all):
#   man      lso.8 is mandoc -T lint clean, and documents every variable of
#            README's configuration table;
#   build    the Debian package builds (dpkg-buildpackage -us -uc -b) from a
#            copy of the tree (nothing lands in the repo), its version is the
#            Makefile's, and lintian reports no error (warnings are listed);
#            the .deb is copied to $LSO_DEB_DIR (default /tmp/lso-deb);
#   install  the .deb installed with dpkg -i into a real systemd
#            (tests/systemd/box, a throwaway overlay of this machine):
#            lso.socket enabled and listening, lso-recover.timer enabled and
#            started, lso-recover.service enabled but
#            not started, the user lso-run made and programs run as it,
#            /api/version and sync and async runs served through
#            lso.socket, then removed and purged. Root only.
# Installs what it needs with apt-get when missing (Debian/Ubuntu, root).
# LSO_KEEP_BOX=1 leaves the box up (LSO_BOX_NAME, default lso-package-test).
# Ends with "N passed, M failed"; exits non-zero on any failure.
set -u
cd "$(dirname "$0")/.." || exit 1
TOP=$(pwd)
PARTS=${*:-man build install}
DEB_DIR=${LSO_DEB_DIR:-/tmp/lso-deb}
BOX="$TOP/tests/systemd/box"
export LSO_BOX_NAME=${LSO_BOX_NAME:-lso-package-test}
TMP=$(mktemp -d /tmp/lso-package.XXXXXX)
passed=0 failed=0 skipped=0
box_started=0
DEB=""

cleanup() {
	if [ "$box_started" = 1 ] && [ -n "${LSO_KEEP_BOX:-}" ]; then
		echo "box '$LSO_BOX_NAME' left up: LSO_BOX_NAME=$LSO_BOX_NAME $BOX exec CMD...; ... down" >&2
	elif [ "$box_started" = 1 ]; then
		"$BOX" down >/dev/null 2>&1
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

. tests/lib.sh
want() { [[ " $PARTS " == *" $1 "* ]]; }
finish() {
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
	exit
}

VERSION=$(sed -n 's/^VERSION[[:space:]]*=[[:space:]]*//p' Makefile | head -n 1)

# --- 1. the manual page ---

if want man; then
	echo "== lso.8"
	if apt_install mandoc; then
		# Warnings and errors: exit status 2 or more with -W warning.
		out=$(mandoc -T lint -W warning lso.8 2>&1)
		if [ $? = 0 ] && [ -z "$out" ]; then pass "mandoc -T lint -W warning lso.8: clean"
		else fail "mandoc -T lint -W warning lso.8" "$out"; fi
		# Style hints too, but not what depends on this machine's manual
		# database (cross-references to pages it has not indexed).
		out=$(mandoc -T lint -W style lso.8 2>&1 | grep -v -e 'mandoc.db' -e 'referenced manual not found')
		if [ -z "$out" ]; then pass "mandoc -T lint -W style lso.8: clean"
		else fail "mandoc -T lint -W style lso.8" "$out"; fi
		check "lso.8 renders" sh -c 'mandoc -T html lso.8 | grep -q "id=\"EXIT_STATUS\""'
	else
		skip "mandoc lint" "mandoc cannot be installed"
	fi
	# Every variable of README's configuration table, in ENVIRONMENT.
	vars=$(sed -n '/^## Configuration/,/^## /s/^| `\([A-Z_]*\)`.*/\1/p' README.md)
	[ -n "$vars" ] || fail "README's configuration table found"
	for v in $vars; do
		if grep -qx "\.It Ev $v" lso.8; then pass "lso.8 documents $v"
		else fail "lso.8 documents $v" "no '.It Ev $v' in ENVIRONMENT"; fi
	done
	for f in SYNOPSIS DESCRIPTION ENVIRONMENT FILES "EXIT STATUS" EXAMPLES "SEE ALSO"; do
		check "lso.8 has $f" grep -qx "\.Sh $f" lso.8
	done
	check "lso.8 names the journal fields" sh -c 'grep -q LSO_JOB_ID= lso.8 && grep -q SYSLOG_IDENTIFIER=lso lso.8'
fi

# --- 2. the Debian package ---

if want build; then
	echo "== Debian package"
	if ! apt_install dpkg-dev debhelper lintian; then
		fail "build tools" "dpkg-dev, debhelper and lintian cannot be installed"
		finish
	fi
	# What a package build leaves in its tree and beside it (others may be
	# editing and building in this tree meanwhile: only these are compared).
	build_products() {
		ls -d "$TOP"/debian/lso "$TOP"/debian/lso-dbgsym "$TOP"/debian/.debhelper \
			"$TOP"/debian/files "$TOP"/debian/*.substvars "$TOP"/debian/debhelper-build-stamp \
			"$TOP"/../lso_*.deb "$TOP"/../lso-dbgsym_*.deb "$TOP"/../lso_*.changes \
			"$TOP"/../lso_*.buildinfo 2>/dev/null
	}
	PRODUCTS_BEFORE=$(build_products)
	SRC=$TMP/build/lso-$VERSION
	mkdir -p "$SRC"
	# The tree as git sees it (tracked and new files, no build products), so
	# nothing the build writes lands in the repo.
	if git -C "$TOP" rev-parse --git-dir >/dev/null 2>&1; then
		git -C "$TOP" ls-files -z --cached --others --exclude-standard |
			while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
			tar --null -T - -cf - | tar -xf - -C "$SRC"
	else
		tar -cf - --exclude=.git --exclude='*.o' --exclude=./lso --exclude=openapi.h . |
			tar -xf - -C "$SRC"
	fi
	expect "debian/changelog's version is the Makefile's VERSION" \
		"$(cd "$SRC" && dpkg-parsechangelog -S Version)" "$VERSION"
	expect "source format" "$(cat "$SRC/debian/source/format")" "3.0 (native)"
	# Build dependencies the machine lacks (versions dropped, alternatives: the first).
	unmet=$(cd "$SRC" && dpkg-checkbuilddeps 2>&1 | sed -n 's/.*Unmet build dependencies: //p' |
		sed 's/([^)]*)//g; s/|[^ ]*//g')
	[ -z "$unmet" ] || apt_install $unmet || fail "build dependencies" "$unmet"
	if (cd "$SRC" && dpkg-buildpackage -us -uc -b) >"$TMP/build.log" 2>&1; then
		pass "dpkg-buildpackage -us -uc -b"
	else
		fail "dpkg-buildpackage -us -uc -b" "$(tail -n 15 "$TMP/build.log")"
		finish
	fi
	DEB=$(ls "$TMP"/build/lso_"$VERSION"_*.deb 2>/dev/null | head -n 1)
	check "lso_${VERSION}_*.deb built" test -s "$DEB"
	expect "the build wrote nothing into the repo or beside it" "$(build_products)" "$PRODUCTS_BEFORE"

	# What is in it.
	dpkg-deb -c "$DEB" | awk '{ print $6 }' | sed 's|^\./|/|' >"$TMP/contents"
	for f in /usr/bin/lso /lib/systemd/system/lso.socket /lib/systemd/system/lso@.service \
		/lib/systemd/system/lso-recover.service /lib/systemd/system/lso-recover.timer \
		/lib/systemd/system/lso-burst.socket \
		/lib/systemd/system/lso-burst.service /lib/systemd/system/lso-jobs.slice \
		/usr/lib/tmpfiles.d/lso.conf /usr/lib/sysusers.d/lso.conf /etc/lso/lso.env \
		/usr/share/man/man8/lso.8.gz /usr/share/doc/lso/README.md.gz \
		/usr/share/doc/lso/CHANGELOG.md.gz /usr/share/doc/lso/changelog.gz /usr/share/doc/lso/copyright; do
		check "package holds $f" grep -qx "$f" "$TMP/contents"
	done
	dpkg-deb -e "$DEB" "$TMP/control"
	expect "conffiles" "$(cat "$TMP/control/conffiles" 2>/dev/null)" /etc/lso/lso.env
	depends=$(dpkg-deb -f "$DEB" Depends)
	echo "     Depends: $depends"
	for d in libcjson1 libcurl4 libsystemd0 libc6; do
		check "Depends names $d" grep -q "\b$d\b" <<<"$depends"
	done
	expect "Recommends" "$(dpkg-deb -f "$DEB" Recommends)" ansible-core
	check "units point at /usr/bin/lso" sh -c "dpkg-deb --fsys-tarfile '$DEB' |
		tar -xOf - ./lib/systemd/system/lso@.service ./lib/systemd/system/lso-recover.service \
			./lib/systemd/system/lso-burst.service | grep -c '^ExecStart=/usr/bin/lso' | grep -qx 3"
	check "postinst enables lso.socket" grep -q "enable 'lso.socket'" "$TMP/control/postinst"
	check "postinst starts lso.socket" grep -q "_dh_action 'lso.socket'" "$TMP/control/postinst"
	check "postinst enables lso-recover.service" grep -q "enable 'lso-recover.service'" "$TMP/control/postinst"
	check "postinst does not start lso-recover.service" sh -c "! grep -q \"_dh_action 'lso-recover.service'\" '$TMP/control/postinst'"
	check "postinst enables lso-recover.timer" grep -q "enable 'lso-recover.timer'" "$TMP/control/postinst"
	check "postinst starts lso-recover.timer" grep -q "_dh_action 'lso-recover.timer'" "$TMP/control/postinst"
	check "no maintainer script touches lso@.service" sh -c "! grep -l 'lso@' '$TMP'/control/p*"
	check "postinst does not start lso-burst.socket" sh -c "! grep -q \"_dh_action 'lso-burst.socket'\" '$TMP/control/postinst'"
	check "prerm stops lso-burst.socket on removal" grep -q "lso-burst.socket" "$TMP/control/prerm"
	check "postinst creates the run user (systemd-sysusers lso.conf)" \
		grep -q "systemd-sysusers.* lso.conf" "$TMP/control/postinst"
	check "the package's lso.env sets LSO_RUN_USER=lso-run" sh -c "dpkg-deb --fsys-tarfile '$DEB' |
		tar -xOf - ./etc/lso/lso.env | grep -qx LSO_RUN_USER=lso-run"

	# lintian: no errors; the rest is listed.
	lintian -I --pedantic "$TMP"/build/lso_"$VERSION"_*.changes >"$TMP/lintian.log" 2>&1
	sed -n 's/^\([EWIPX]\): /     lintian \1: /p' "$TMP/lintian.log"
	if grep -q '^E: ' "$TMP/lintian.log"; then fail "lintian: no errors" "$(grep '^E: ' "$TMP/lintian.log")"
	else pass "lintian: no errors ($(grep -c '^W: ' "$TMP/lintian.log") warnings)"; fi

	mkdir -p "$DEB_DIR" && cp "$TMP"/build/*.deb "$DEB_DIR/" &&
		DEB=$DEB_DIR/${DEB##*/} && echo "     package: $DEB"
fi

# --- 3. installed under a real systemd ---

# bx CMD...: in the box.
bx() { "$BOX" exec "$@" </dev/null; }
# request PATH [curl args...]: inside the box, through lso.socket; sets CODE, body in $TMP/body.
request() {
	local path=$1
	shift
	"$BOX" exec curl -sS --max-time 30 -w '\n%{http_code}' "$@" \
		"http://127.0.0.1:44444$path" >"$TMP/response" 2>"$TMP/curl.err" </dev/null
	CODE=$(tail -n 1 "$TMP/response")
	sed '$d' "$TMP/response" >"$TMP/body"
}

if want install; then
	echo "== the package under systemd"
	if [ -z "$DEB" ]; then
		DEB=$(ls "$DEB_DIR"/lso_"$VERSION"_*.deb 2>/dev/null | head -n 1)
	fi
	if [ "$(id -u)" != 0 ]; then
		skip "install under systemd" "not root"
	elif [ -z "$DEB" ] || [ ! -s "$DEB" ]; then
		fail "install under systemd" "no lso_${VERSION}_*.deb (run the build part)"
	else
		box_started=1
		"$BOX" down >/dev/null 2>&1
		if ! "$BOX" up; then
			fail "boot the systemd box"
			finish
		fi
		"$BOX" exec sh -c 'cat >/tmp/lso.deb' <"$DEB"
		# Container images (Docker's) forbid starting services from maintainer
		# scripts with a policy-rc.d that exits 101; a real host has none. The
		# box's root is an overlay: removing it there leaves this machine alone.
		if bx test -e /usr/sbin/policy-rc.d; then
			echo "     removing the image's /usr/sbin/policy-rc.d inside the box, as on a real host"
			bx rm -f /usr/sbin/policy-rc.d
		fi
		if bx dpkg -i /tmp/lso.deb >"$TMP/dpkg.log" 2>&1; then pass "dpkg -i lso_${VERSION}.deb"
		else fail "dpkg -i" "$(tail -n 10 "$TMP/dpkg.log")"; finish; fi
		expect "dpkg status" "$(bx dpkg-query -W -f='${Status} ${Version}' lso)" "install ok installed $VERSION"
		expect "lso --version" "$(bx lso --version)" "lso $VERSION"
		expect "lso.socket enabled by the package" "$(bx systemctl is-enabled lso.socket)" enabled
		expect "lso.socket started by the package" "$(bx systemctl is-active lso.socket)" active
		expect "lso-recover.service enabled by the package" "$(bx systemctl is-enabled lso-recover.service)" enabled
		expect "lso-recover.service not started by the package" \
			"$(bx systemctl show -p InactiveExitTimestampMonotonic --value lso-recover.service)" 0
		expect "lso-recover.timer enabled by the package" "$(bx systemctl is-enabled lso-recover.timer)" enabled
		expect "lso-recover.timer started by the package" "$(bx systemctl is-active lso-recover.timer)" active
		check "man lso finds the page" bx man -w lso
		check "/etc/lso/lso.env is a conffile" sh -c "'$BOX' exec dpkg-query -W -f='\${Conffiles}' lso </dev/null | grep -q /etc/lso/lso.env"

		# A root with one program, set in /etc/lso/lso.env.
		bx mkdir -p /srv/lso-pkg
		"$BOX" exec sh -c 'cat >/srv/lso-pkg/greet && chmod 755 /srv/lso-pkg/greet' <<-'EOF'
			#!/bin/sh
			echo "hello $*"
		EOF
		"$BOX" exec sh -c 'cat >/srv/lso-pkg/who && chmod 755 /srv/lso-pkg/who' <<-'EOF'
			#!/bin/sh
			echo "$(id -un) $(id -gn) $HOME"
		EOF
		"$BOX" exec sh -c 'cat >>/etc/lso/lso.env' <<-'EOF'
			EXECUTABLES_ROOT_DIR=/srv/lso-pkg
		EOF
		expect "the package made the user lso-run: no login, no home" \
			"$(bx getent passwd lso-run | cut -d: -f6,7)" "/nonexistent:/usr/sbin/nologin"
		check "lso-run is a system user" sh -c "[ \"\$('$BOX' exec id -u lso-run </dev/null)\" -lt 1000 ]"

		request /api/version
		expect "GET /api/version through lso.socket" "$CODE" 200
		jqcheck "version is $VERSION" ".api == \"2.0\" and .module == \"$VERSION\""
		request /api/execute/ -H 'Content-Type: application/json' \
			--data-binary '{"executable_name":"greet","args":["from the package"],"is_async":false}'
		expect "sync run status" "$CODE" 201
		jqcheck "sync run output" '.result == {"output":"hello from the package\n","return_code":0,"status":"successful"}'
		request /api/execute/ -H 'Content-Type: application/json' \
			--data-binary '{"executable_name":"who","is_async":false}'
		jqcheck "the installed lso runs programs as lso-run" '.result.output == "lso-run lso-run /nonexistent\n"'
		request /api/execute/ -H 'Content-Type: application/json' \
			--data-binary '{"executable_name":"greet","args":["later"]}'
		expect "async run accepted" "$CODE" 201
		job=$(jq -r .job_id "$TMP/body" 2>/dev/null)
		for _ in $(seq 50); do
			request "/api/jobs/$job"
			jq -e '.status == "successful"' "$TMP/body" >/dev/null 2>&1 && break
			sleep 0.2
		done
		jqcheck "async job recorded successful (in /var/lib/lso)" '.result.output == "hello later\n"'
		check "async job ran in lso-job-$job.scope (sd-bus, libsystemd0 dlopened)" sh -c \
			"'$BOX' exec journalctl --no-pager -o cat LSO_JOB_ID=$job \
				OBJECT_SYSTEMD_UNIT=lso-job-$job.scope </dev/null | grep -q successful"
		check "journalctl SYSLOG_IDENTIFIER=lso LSO_JOB_ID=ID has the request line" sh -c \
			"'$BOX' exec journalctl --no-pager -o cat SYSLOG_IDENTIFIER=lso LSO_JOB_ID=$job </dev/null |
				grep -q '^POST /api/execute/ 201 job=$job'"

		# Burst mode, as an admin switches to it.
		expect "lso-burst.socket not enabled by the package" "$(bx systemctl is-enabled lso-burst.socket)" disabled
		expect "lso-burst.socket not started by the package" "$(bx systemctl is-active lso-burst.socket)" inactive
		check "switch: systemctl disable --now lso.socket; enable --now lso-burst.socket" \
			bx sh -c 'systemctl disable --now lso.socket && systemctl enable --now lso-burst.socket'
		request /api/version
		expect "GET /api/version through lso-burst.socket" "$CODE" 200
		request /api/execute/ -H 'Content-Type: application/json' \
			--data-binary '{"executable_name":"greet","args":["in a burst"],"is_async":false}'
		jqcheck "sync run in burst mode" '.result.output == "hello in a burst\n"'
		expect "lso-burst.service serves it" "$(bx systemctl is-active lso-burst.service)" active
		check "journalctl -u lso-burst.service has the request line" sh -c \
			"'$BOX' exec journalctl --no-pager -o cat -u lso-burst.service </dev/null |
				grep -q '^POST /api/execute/ 201 job=.* program=\"greet\" rc=0'"

		# Remove, then purge: the socket goes, the configuration too.
		if bx dpkg -r lso >"$TMP/dpkg.log" 2>&1; then pass "dpkg -r lso"
		else fail "dpkg -r lso" "$(tail -n 5 "$TMP/dpkg.log")"; fi
		check "lso.socket stopped on removal" sh -c "! '$BOX' exec systemctl is-active --quiet lso.socket </dev/null"
		check "lso-burst.socket stopped on removal" sh -c "! '$BOX' exec systemctl is-active --quiet lso-burst.socket </dev/null"
		check "lso-burst.service stopped on removal" sh -c "! '$BOX' exec systemctl is-active --quiet lso-burst.service </dev/null"
		check "/etc/lso/lso.env kept on removal" bx test -e /etc/lso/lso.env
		if bx dpkg -P lso >"$TMP/dpkg.log" 2>&1; then pass "dpkg -P lso"
		else fail "dpkg -P lso" "$(tail -n 5 "$TMP/dpkg.log")"; fi
		check "/etc/lso/lso.env gone on purge" sh -c "! '$BOX' exec test -e /etc/lso/lso.env </dev/null"
		check "lso.socket's enablement gone on purge" sh -c \
			"! '$BOX' exec test -e /etc/systemd/system/sockets.target.wants/lso.socket </dev/null"
		check "lso-burst.socket's enablement gone on purge" sh -c \
			"! '$BOX' exec test -e /etc/systemd/system/sockets.target.wants/lso-burst.socket </dev/null"
	fi
fi

finish
