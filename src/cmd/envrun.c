/*
 * envrun: the opening and closing apply and destroy share (envrun.h).
 */
#include <string.h>

#include "cmd/envrun.h"
#include "phase/provider.h"
#include "provider/proxmox/apply.h"
#include "state/history.h"
#include "util/event.h"
#include "util/out.h"

int
env_run_open(struct env_run *run, const char *env_arg, unsigned flags,
	     const char *command)
{
	int r;

	memset(run, 0, sizeof(*run));    /* run->err as ERR_INIT */
	run->plan = &run->noplan;
	if ((r = env_open(&run->e, env_arg, flags, &run->err)) < 0 ||
	    (r = state_load(&run->c.st, run->e.dir, &run->err)) < 0)
		return r;
	run->c.cfg = run->e.cfg;
	return cmd_provider(&run->c.provider, run->e.cfg, command, &run->err);
}

int
env_run_provider(struct env_run *run)
{
	const struct provider *p = run->c.provider;
	int r;

	if (p->ctx_open && (r = p->ctx_open(&run->c, &run->e, &run->err)) < 0)
		return r;
	if (p->vm_plan)
		run->plan = &pve_apply_of(&run->c)->plan;
	return 0;
}

int
env_run_failed(struct env_run *run, const char *command, const char *env_arg,
	       const char **result)
{
	int rc = err_exit_code(&run->err);

	*result = rc == 3 ? "interrupted" : "failed";
	out_error("%s '%s': %s", command, env_arg, run->err.msg);
	return rc;
}

void
env_run_end(struct env_run *run, const char *command, const char *env_arg,
	    const char *result, int rc, size_t unchanged, const char *kept)
{
	struct apply_ctx *c = &run->c;

	if (run->tallying)
		env_tally_finish(&run->tally, &run->e, &c->st, unchanged);
	env_summary(command, run->e.cfg ? run->e.cfg->name : NULL, env_arg,
		    result, rc, run->tallying ? &run->tally : NULL, kept, NULL);
	event_end();
	history_close(run->hist);
	env_tally_release(&run->tally);
	if (c->provider && c->provider->ctx_close)
		c->provider->ctx_close(c);
	state_release(&c->st);
	talos_creds_release(&c->creds);
	env_close(&run->e);
}
