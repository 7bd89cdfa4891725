#!/bin/sh
# Install the Debian/Ubuntu packages that building and testing lso need, when missing.
packages="gcc make bmake pkg-config libcjson-dev libcurl4-openssl-dev libsystemd-dev
systemd curl jq python3 ansible-core openssh-client time"
missing=
for p in $packages; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
	echo "missing packages:$missing" >&2
	echo "install them with: apt-get install$missing" >&2
	exit 1
fi
echo "installing:$missing" >&2
[ -n "$(ls /var/lib/apt/lists 2>/dev/null | grep -v -e lock -e partial)" ] || apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null ||
	{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null; }
