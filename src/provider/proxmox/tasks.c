/*
 * Tasks followed together per Proxmox node (proxmox.h, pve_watch).
 *
 * The waiters of one node form a group. Whoever finds nobody listing for
 * the group becomes its lister for one tick: sleeps the group's interval,
 * lists the node's active tasks once, and marks every member whose task
 * is no longer running; the others wait on a condition variable. A marked
 * member reads its task's status itself, once (the exit status, and the
 * log lines of a failure, are the task's own). So a tick costs one
 * request however many tasks run on the node.
 *
 * FACTS.md §2: GET /nodes/{node}/tasks lists the node's tasks; with
 * source=active the ones not yet archived (apidata.json: source
 * archive|active|all, limit default 50, so strata sends one that covers
 * the group). A listed task counts as running unless the entry carries
 * another status. A member that joined after a listing started is not
 * judged by it.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "provider/proxmox/proxmox.h"
#include "util/proc.h"

struct waiter {
	const char *upid;
	unsigned long join_seq;
	bool left;                 /* not running in a listing: read status */
	struct waiter *next;
};

struct group {
	char *node;
	struct waiter *head;
	size_t members;
	bool listing;              /* a member is listing for the group */
	bool broken;               /* a listing failed: per-task polling */
	unsigned long seq;         /* listings started */
	long delay;
	struct group *next;
};

struct pve_watch {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct group *groups;
};

struct pve_watch *
pve_watch_new(void)
{
	struct pve_watch *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	return w;
}

void
pve_watch_free(struct pve_watch *w)
{
	struct group *g, *n;

	if (!w)
		return;
	for (g = w->groups; g; g = n) {
		n = g->next;
		free(g->node);
		free(g);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static struct group *
group_of(struct pve_watch *w, const char *node)
{
	struct group *g;

	for (g = w->groups; g; g = g->next)
		if (!strcmp(g->node, node))
			return g;
	g = xcalloc(1, sizeof(*g));
	g->node = xstrdup(node);
	g->next = w->groups;
	w->groups = g;
	return g;
}

static void
join(struct group *g, struct waiter *me)
{
	if (!g->members)
		g->delay = 50;     /* a fresh group starts quick */
	me->join_seq = g->seq;
	me->left = false;
	me->next = g->head;
	g->head = me;
	g->members++;
}

static void
leave(struct group *g, struct waiter *me)
{
	struct waiter **pp;

	for (pp = &g->head; *pp; pp = &(*pp)->next)
		if (*pp == me) {
			*pp = me->next;
			g->members--;
			return;
		}
}

/* Does the listing show the task as running? */
static bool
listed_running(json_t *data, const char *upid)
{
	json_t *e;
	size_t i;

	json_array_foreach(data, i, e) {
		const char *u = json_string_value(json_object_get(e, "upid"));
		const char *st = json_string_value(json_object_get(e, "status"));

		if (u && !strcmp(u, upid))
			return !st || !strcasecmp(st, "running");
	}
	return false;
}

/* One listing for group g (called unlocked). */
static int
list_node(struct pve *p, const char *node, size_t members, json_t **out,
	  struct err *err)
{
	char *path = xasprintf("/nodes/%s/tasks", node);
	struct pve_params q;
	int r;

	pve_params_init(&q);
	pve_params_add(&q, "source", "active");
	/* the default is 50; the list holds other tasks too */
	pve_params_addf(&q, "limit", "%zu", members * 2 + 100);
	r = pve_call(p, "GET", path, &q, out, err);
	if (r == 0 && !json_is_array(*out))
		r = err_set(err, ERR_FAIL, "GET %s: expected a list", path);
	pve_params_release(&q);
	free(path);
	return r;
}

static void
lister_tick(struct pve_watch *w, struct group *g, struct pve *p)
{
	struct err lerr = ERR_INIT;
	json_t *data = NULL;
	unsigned long s;
	size_t members;
	long d = g->delay;
	int r;

	g->listing = true;
	pthread_mutex_unlock(&w->mu);
	if (!proc_sleep_ms(d)) {
		pthread_mutex_lock(&w->mu);
		g->listing = false;
		pthread_cond_broadcast(&w->cv);
		return;
	}
	pthread_mutex_lock(&w->mu);
	s = ++g->seq;
	members = g->members;
	pthread_mutex_unlock(&w->mu);
	r = list_node(p, g->node, members, &data, &lerr);
	pthread_mutex_lock(&w->mu);
	if (r < 0) {
		g->broken = true;
	} else {
		struct waiter *m;

		for (m = g->head; m; m = m->next)
			if (m->join_seq < s && !listed_running(data, m->upid))
				m->left = true;
		g->delay = d * 2 > pve_poll_ms(p) ? pve_poll_ms(p) : d * 2;
	}
	json_decref(data);
	g->listing = false;
	pthread_cond_broadcast(&w->cv);
}

int
pve_watch_wait(struct pve_watch *w, struct pve *p, const char *upid,
	       long timeout_ms, struct err *err)
{
	struct waiter me = { .upid = upid };
	struct group *g;
	char *node;
	long start = mono_ms();
	int r = 0;

	if (!w)
		return pve_task_wait(p, upid, timeout_ms, err);
	if (!(node = pve_upid_node(upid)))
		return err_set(err, ERR_FAIL, "'%s' is not a task id", upid);
	pthread_mutex_lock(&w->mu);
	g = group_of(w, node);
	free(node);
	join(g, &me);
	for (;;) {
		long left_ms = timeout_ms > 0 ? timeout_ms - (mono_ms() - start) : 0;

		if (me.left) {
			bool stopped = false;

			leave(g, &me);
			pthread_mutex_unlock(&w->mu);
			if ((r = pve_task_check(p, upid, &stopped, err)) < 0 || stopped)
				return r;
			/* Not listed yet still running: back in the group. */
			pthread_mutex_lock(&w->mu);
			join(g, &me);
			continue;
		}
		if (g->broken) {
			leave(g, &me);
			pthread_mutex_unlock(&w->mu);
			return pve_task_wait(p, upid, timeout_ms > 0 ? (left_ms > 0 ? left_ms : 1) : 0,
					     err);
		}
		if (timeout_ms > 0 && left_ms <= 0) {
			r = err_set(err, ERR_FAIL, "task %s still running after %lds",
				    upid, timeout_ms / 1000);
			break;
		}
		if (proc_interrupted) {
			r = err_set(err, ERR_INTR, "interrupted while waiting for "
				    "task %s (it goes on in Proxmox)", upid);
			break;
		}
		if (!g->listing) {
			lister_tick(w, g, p);
		} else {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 200 * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&w->cv, &w->mu, &ts);
		}
	}
	leave(g, &me);
	pthread_mutex_unlock(&w->mu);
	return r;
}
