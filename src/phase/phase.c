#include "phase/phase.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "util/buf.h"
#include "util/event.h"
#include "util/out.h"

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
	/* The first Ctrl-C stops at the next safe point; a second one falls
	 * back to the default action, for when that is not soon enough. */
	sa.sa_flags = SA_RESETHAND;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
}

bool
apply_reinstall_asked(const struct apply_ctx *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->n_reinstall; i++)
		if (!strcmp(c->reinstall[i], name))
			return true;
	return false;
}

bool
apply_reinstalls_all_controlplanes(const struct apply_ctx *c)
{
	size_t i, n = 0;

	for (i = 0; i < c->cfg->n_nodes; i++) {
		const struct node *nd = &c->cfg->nodes[i];

		if (nd->role != ROLE_CONTROLPLANE)
			continue;
		if (!apply_reinstall_asked(c, nd->name))
			return false;
		n++;
	}
	return n > 0;
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
		event_phase_start(ph->name, ph->title);
		if (ph->should_run && !ph->should_run(c)) {
			if (!c->dry_run && !ph->quiet_skip)
				out_step("%s: nothing to do", ph->title);
			event_phase_end(ph->name, "skipped", NULL);
			continue;
		}
		if (c->dry_run) {
			out_step("would run: %s", ph->title);
			/* -o json keeps stdout for events */
			if (ph->dry_run)
				ph->dry_run(c, event_active() ? stderr : stdout);
			event_phase_end(ph->name, "dry_run", NULL);
			continue;
		}
		if ((r = ph->run(c, err)) < 0) {
			if (phase_interrupted) {
				char why[sizeof(err->msg)];

				snprintf(why, sizeof(why), "%s", err->msg);
				event_phase_end(ph->name, "interrupted", why);
				return err_set(err, ERR_INTR, "interrupted in phase "
					       "'%s' (%s); run the same command "
					       "again to resume", ph->name, why);
			}
			event_phase_end(ph->name, err->code == ERR_INTR
					? "interrupted" : "failed", err->msg);
			return err_wrap(err, "phase '%s'", ph->name);
		}
		if ((r = state_phase_mark(&c->st, ph->name, true, err)) < 0) {
			event_phase_end(ph->name, "failed", err->msg);
			return err_wrap(err, "phase '%s': journal", ph->name);
		}
		event_phase_end(ph->name, "done", NULL);
	}
	return 0;
}

struct pool {
	void (*fn)(void *ctx, size_t i);
	void *ctx;
	size_t n, next;
	pthread_mutex_t mu;
};

static void *
pool_worker(void *arg)
{
	struct pool *pl = arg;

	for (;;) {
		size_t i;

		pthread_mutex_lock(&pl->mu);
		if (pl->next >= pl->n || phase_interrupted) {
			pthread_mutex_unlock(&pl->mu);
			return NULL;
		}
		i = pl->next++;
		pthread_mutex_unlock(&pl->mu);
		pl->fn(pl->ctx, i);
	}
}

void
phase_parallel(size_t n, int max_parallel, void (*fn)(void *ctx, size_t i),
	       void *ctx)
{
	struct pool pl = { .fn = fn, .ctx = ctx, .n = n };
	size_t i, nth = max_parallel > 0 && n > (size_t)max_parallel
			? (size_t)max_parallel : n;
	pthread_t *th = xcalloc(nth + 1, sizeof(*th));
	size_t started = 0;

	pthread_mutex_init(&pl.mu, NULL);
	/* Workers take items from a shared counter: fewer threads than
	 * asked (a failed create) still run every item, and with none this
	 * thread runs them. Only threads that started are joined. */
	for (i = 0; i < nth; i++)
		if (pthread_create(&th[started], NULL, pool_worker, &pl) == 0)
			started++;
	if (!started)
		pool_worker(&pl);
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&pl.mu);
	free(th);
}

int
phase_collect(size_t n, const struct err *(*failed)(void *ctx, size_t i),
	      void *ctx, const char *noun, struct err *err)
{
	size_t i, nfail = 0;

	for (i = 0; i < n; i++) {
		const struct err *e = failed(ctx, i);

		if (!e)
			continue;
		if (!nfail++)
			*err = *e;
		else
			out_error("%s", e->msg);
	}
	if (nfail > 1)
		err_wrap(err, "%zu %s failed; the first", nfail, noun);
	if (nfail)
		return -1;
	if (phase_interrupted)
		return err_set(err, ERR_INTR, "interrupted; run apply again to "
			       "resume");
	return 0;
}
