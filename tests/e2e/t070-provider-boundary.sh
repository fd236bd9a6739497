#!/bin/sh
# One phase engine, two platforms (docs/architecture.md): the shared Talos,
# Kubernetes and addon phases reach the machine under a node only through
# the provider interface (src/phase/provider.h); no Proxmox call, type or
# header in them, and the apply/destroy phase lists belong to the
# providers, not to the commands; plan and status call the providers'
# plan_machines / status_machines and test no platform themselves. Static
# checks of the source tree (no network: nothing of 127.0.70.0/24 is used).
. "$(dirname "$0")/lib.sh"

SHARED="src/phase/ph_talos.c src/phase/ph_cni.c src/phase/ph_gitops.c src/phase/addon_job.c src/phase/addon.h"
cd "$TOP" || exit 1
# C without its comments, so a mention in prose does not count
nocomments() {
	sed -e 's://.*$::' | awk '
		{ line = $0
		  while (1) {
			if (inc) { e = index(line, "*/"); if (!e) { line = ""; break }
				   line = substr(line, e + 2); inc = 0 }
			s = index(line, "/*"); if (!s) break
			out = out substr(line, 1, s - 1); line = substr(line, s + 2); inc = 1
		  }
		  print out line; out = "" }'
}
for f in $SHARED; do
	[ -f "$f" ] || { bad "$f missing"; continue; }
	code=$(nocomments <"$f")
	if printf '%s\n' "$code" | grep -nE '\bpve_[a-z_]+ *\(|struct pve\b|vm_spec|->vmid' >"$T/hits"; then
		bad "$f uses Proxmox directly:"; sed 's/^/     | /' "$T/hits"
	else
		ok "$f calls no pve_* and uses no VM type"
	fi
	if grep -nE '#include *"provider/' "$f" >"$T/hits"; then
		bad "$f includes a provider header:"; sed 's/^/     | /' "$T/hits"
	else
		ok "$f includes no provider header"
	fi
done
# Through any chain of includes: phase.h (struct apply_ctx), the provider
# interface, the shared phases and the VPS provider reach no Proxmox
# header (the Proxmox fields live in provider/proxmox/apply.h, struct
# pve_apply, behind c->pstate).
CC=${CC:-cc}
for f in src/phase/phase.h src/phase/provider.h $SHARED src/phase/ph_upgrade.c \
	 src/phase/ph_k8supgrade.c src/phase/ph_etcd.c src/phase/phase.c \
	 src/provider/vps/*.c src/provider/vps/*.h; do
	[ -f "$f" ] || { bad "$f missing"; continue; }
	if ! $CC -std=c17 -D_GNU_SOURCE -Isrc -MM -MG "$f" >"$T/deps" 2>"$T/err"; then
		bad "$f: $CC -MM failed"; sed 's/^/     | /' "$T/err"
	elif tr ' \\' '\n\n' <"$T/deps" | grep -E '(^|/)provider/proxmox/' >"$T/hits"; then
		bad "$f reaches a Proxmox header:"; sed 's/^/     | /' "$T/hits"
	else
		ok "$f reaches no Proxmox header"
	fi
done
# struct apply_ctx itself: no Proxmox field, a provider-state pointer
sed -n '/^struct apply_ctx {/,/^};/p' src/phase/phase.h | nocomments >"$T/ctx"
if grep -nE 'pve|iso_|cidata|struct plan\b|vm_spec' "$T/ctx" >"$T/hits"; then
	bad "struct apply_ctx holds Proxmox fields:"; sed 's/^/     | /' "$T/hits"
else
	ok "struct apply_ctx holds no Proxmox field"
fi
grep -q 'void \*pstate;' "$T/ctx" && ok "struct apply_ctx has the provider's pstate" \
	|| bad "struct apply_ctx has no pstate"
for f in src/cmd/cmd_apply.c src/cmd/cmd_destroy.c; do
	if grep -nE '&ph_(vms|start|iso|cidata|restart|talos_install)\b' "$f" >"$T/hits"; then
		bad "$f lists phases itself:"; sed 's/^/     | /' "$T/hits"
	else
		ok "$f takes its phase list from the provider"
	fi
done
# plan and status: the provider's hooks, no platform test in the command
for f in src/cmd/cmd_plan.c src/cmd/cmd_status.c; do
	if grep -nE 'PLATFORM_[A-Z]+|platform *[!=]=' "$f" >"$T/hits"; then
		bad "$f tests the platform itself:"; sed 's/^/     | /' "$T/hits"
	else
		ok "$f has no platform test"
	fi
done
grep -q -- '->plan_machines(' src/cmd/cmd_plan.c && ok "plan runs the provider's plan_machines" || bad "plan does not call plan_machines"
grep -q -- '->status_machines(' src/cmd/cmd_status.c && ok "status runs the provider's status_machines" || bad "status does not call status_machines"
grep -q 'provider->apply' src/cmd/cmd_apply.c && ok "apply runs the provider's apply list" || bad "apply does not run c.provider->apply"
grep -q 'provider->destroy' src/cmd/cmd_destroy.c && ok "destroy runs the provider's destroy list" || bad "destroy does not run c.provider->destroy"
finish
