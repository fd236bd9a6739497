#!/bin/sh
# Install the Debian packages listed in debian-packages.txt that are missing.
# Runs apt-get only when something is missing, so it is cheap on a ready machine.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
missing=""
for p in $(grep -v '^#' "$here/debian-packages.txt" | tr -s ' \n' ' '); do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: need root to apt-get install:$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt-get on the machine instead of failing at once.
apt-get -o DPkg::Lock::Timeout=600 update -qq
apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
