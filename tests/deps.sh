#!/bin/sh
# tests/deps.sh [GROUP...]: install what building and testing lso need, when
# missing: Debian/Ubuntu packages with apt-get (as root), then, for the test
# group, the npm packages tests/openapi.sh validates with and those
# tests/docs.sh serves to the browser (into tests/.npm, see their --install).
# A fresh debootstrap minbase with git, make and ca-certificates is the
# baseline (make test-fresh checks it).
#   build     the compiler and the libraries (make lso)
#   test      what make test and make run use (the default: build test)
#   fuzz      clang and its libFuzzer runtime (make fuzz)
#   valgrind  valgrind (make test-valgrind)
#   crash     libfuse3 and strace (make test-crash: tests/crashfs, tests/crash.sh)
#   scale     HAProxy, iproute2 (ip netns), OpenSSL's command, curl, jq and
#             python3 (make test-scale, make bench-scale)
# tests/package.sh, tests/launchers.sh and bench/bench.sh install their own.
cd "$(dirname "$0")/.." || exit 1
[ $# -gt 0 ] || set -- build test

build="gcc libc6-dev make bmake pkg-config libcjson-dev libcurl4-openssl-dev libsystemd-dev"
# systemd: systemd-socket-activate and systemd-analyze; man-db: verify looks
# up Documentation=man:lso(8); nodejs, npm: the OpenAPI validators; ansible-core
# and openssh-client: the playbook routes; python3: the callback receiver;
# time: /usr/bin/time, the peak RSS of an lso sending a file of GBs; chromium:
# the documentation pages rendered (tests/docs.sh).
test="systemd curl jq python3 ansible-core openssh-client man-db nodejs npm time chromium"
packages=
for group; do
	case $group in
	build) packages="$packages $build" ;;
	test) packages="$packages $test" ;;
	fuzz) packages="$packages clang libclang-rt-dev" ;;
	valgrind) packages="$packages valgrind" ;;
	crash) packages="$packages libfuse3-dev fuse3 strace" ;;
	scale) packages="$packages haproxy iproute2 openssl curl jq python3 procps" ;;
	*) echo "tests/deps.sh: unknown group $group (build, test, fuzz, valgrind, crash, scale)" >&2; exit 2 ;;
	esac
done

# installed PACKAGE: Node.js may come from elsewhere (NodeSource's nodejs
# includes npm and conflicts with Debian's npm): there the commands suffice.
installed() {
	case $1 in
	nodejs) command -v node >/dev/null && return 0 ;;
	npm) command -v npm >/dev/null && return 0 ;;
	esac
	dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=
for p in $packages; do
	installed "$p" || missing="$missing $p"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
		echo "missing packages:$missing" >&2
		echo "install them with: apt-get install$missing" >&2
		exit 1
	fi
	echo "installing:$missing" >&2
	export DEBIAN_FRONTEND=noninteractive
	opts="-y -qq --no-install-recommends -o DPkg::Lock::Timeout=300"
	[ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install $opts $missing >/dev/null ||
		{ apt-get update -qq && apt-get install $opts $missing >/dev/null; } || exit 1
fi

case " $* " in
*" test "*) tests/openapi.sh --install && exec tests/docs.sh --install ;;
esac
