#!/bin/sh
# Transient Talos errors: Bootstrap answering "bootstrap is not available
# yet" and "time is not in sync yet" (FailedPrecondition) is retried and the
# apply succeeds; a node that is slow to come back from its install reboot
# is waited for.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/labsim.sh"
labsim_start --talos-net 127.0.33.0/24
E="$T/envs/tr"
write_env "$E" tr 1300 1 1 127.0.23
labsim_ctl POST knobs '{"talos_bootstrap_transient": ["bootstrap is not available yet", "time is not in sync yet", "bootstrap is not available yet"]}' > /dev/null
# the worker takes 20 s (x 0.01) longer than the others to boot and to reboot
labsim_ctl POST knobs '{"talos_slow": {"1301": 20}}' > /dev/null

expect_rc 0 "apply with transient Bootstrap errors" -- "$STRATA" apply "$E" --yes --timeout 60s
expect_grep "bootstrapped etcd on tr-cp-1" "$T/err" "bootstrap reported"
[ "$(talos_calls Bootstrap)" = 4 ] && ok "Bootstrap retried: 3 refusals, then OK" || bad "Bootstrap calls $(talos_calls Bootstrap)"
[ "$(labsim_py "s['talos']['knobs']['talos_bootstrap_transient']")" = "[]" ] && ok "every transient error was seen" || bad "knob left"
[ "$(labsim_py "s['talos']['clusters']['https://127.0.23.10:6443']['bootstrapped']")" = True ] && ok "cluster bootstrapped" || bad "not bootstrapped"
expect_grep "Kubernetes: 2/2 nodes registered" "$T/err" "both nodes registered"
finish
