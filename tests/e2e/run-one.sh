#!/bin/sh
# tests/run.sh's runner for one e2e script: run-one.sh LOGDIR NETNS SCRIPT.
# Output goes to LOGDIR/e2e_NAME.out, the exit status to LOGDIR/e2e_NAME.rc.
# With NETNS non-empty the script runs in a new network namespace (only its
# own loopback), so scripts running side by side cannot share an address.
log=$1 netns=$2 t=$3
name=$(basename "$t" .sh)
t0=$(date +%s)
if [ -n "$netns" ]; then
	unshare -n sh -c 'ip link set lo up && exec sh "$0"' "$t" >"$log/e2e_$name.out" 2>&1
else
	sh "$t" >"$log/e2e_$name.out" 2>&1
fi
rc=$?
echo $(($(date +%s) - t0)) >"$log/e2e_$name.secs"
echo $rc >"$log/e2e_$name.rc"
