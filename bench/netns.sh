#!/bin/sh
# bench/netns.sh CMD [ARG...]: run CMD in a private network namespace that
# has only the loopback interface (up), as the tests run: the simulator,
# its Talos nodes (127.0.N.M) and sshd then listen where nothing else on
# the host can reach them or be reached by mistake. Used by `make bench`
# for every bench/*.sh and by bench/lib.sh for a bench run by hand. Needs
# root or unprivileged user namespaces; without either the command runs
# on the host's loopback, and says so on stderr.
[ -n "${STRATA_NETNS:-}" ] && exec "$@"
STRATA_NETNS=1
export STRATA_NETNS
if unshare -n true 2>/dev/null; then
	exec unshare -n sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
if unshare -rn true 2>/dev/null; then
	exec unshare -rn sh -c 'ip link set lo up && exec "$@"' sh "$@"
fi
echo "bench: cannot make a private network namespace (unshare -n): $* runs on the host's loopback" >&2
exec "$@"
