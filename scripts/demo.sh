#!/bin/sh
# make demo: the whole job on one machine. Today: every example environment
# is created with `strata init`, validated and expanded (nodes, addresses,
# VM ids), and `strata gen` renders its Talos configs when that command is
# built in. Nothing leaves this machine: no API is contacted.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
strata="$top/build/strata"
work=${DEMO_DIR:-$(mktemp -d /tmp/strata-demo.XXXXXX)}
export STRATA_EXAMPLES="$top/examples"
export NO_COLOR=${NO_COLOR:-}
echo "==> strata demo in $work"
cd "$work"
has_gen=0
"$strata" --help | grep -q '^  gen ' && has_gen=1
for ex in "$top"/examples/*/; do
	name=$(basename "$ex")
	env="demo-$name"
	echo
	echo "==> $name"
	rm -rf "environments/$env"
	"$strata" init "$env" --from "$name" >/dev/null
	"$strata" validate --nodes "$env"
	if [ $has_gen -eq 1 ] && grep -q '^nodes:' "environments/$env/config.yml"; then
		"$strata" gen "$env"
		ls -l "environments/$env"
	fi
done
echo
echo "==> done: environments are in $work/environments"
