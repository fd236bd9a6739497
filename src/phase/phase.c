#include "phase/phase.h"

#include <string.h>

#include "util/out.h"

volatile sig_atomic_t phase_interrupted;

static void
on_signal(int sig)
{
	(void)sig;
	phase_interrupted = 1;
}

void
phase_install_signals(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

int
phase_run_list(const struct phase *const *list, size_t n, struct apply_ctx *c,
	       struct err *err)
{
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		const struct phase *ph = list[i];

		if (phase_interrupted)
			return err_set(err, ERR_INTR,
				       "interrupted before phase '%s'; run the "
				       "same command again to resume", ph->name);
		if (ph->should_run && !ph->should_run(c)) {
			if (!c->dry_run)
				out_step("%s: nothing to do", ph->title);
			continue;
		}
		if (c->dry_run) {
			out_step("would run: %s", ph->title);
			if (ph->dry_run)
				ph->dry_run(c, stdout);
			continue;
		}
		if ((r = ph->run(c, err)) < 0) {
			if (phase_interrupted && err->code != ERR_INTR)
				err->code = ERR_INTR;
			return err_wrap(err, "phase '%s'", ph->name);
		}
		if ((r = state_phase_mark(&c->st, ph->name, true, err)) < 0)
			return err_wrap(err, "phase '%s': journal", ph->name);
	}
	return 0;
}
