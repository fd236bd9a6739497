/*
 * Tasks followed together per Proxmox node (proxmox.h, pve_watch and
 * pve_tasks_wait).
 *
 * FACTS.md §2 and apidata.json: GET /nodes/{node}/tasks lists a node's
 * tasks, newest first; source=all takes the running ones and the ended
 * ones, `since` only those started at or after an epoch second (a UPID
 * carries its start time), `limit` caps the list (default 50, so strata
 * sends one that covers the group). An entry carries `status`: none or
 * RUNNING while the task runs, else its exit status: OK, `WARNINGS: n`
 * (success) or the error text.
 *
 * So one listing per tick and node tells every task followed there
 * whether it still runs and, for most, how it ended: a task listed as
 * ended OK costs no further request. A task listed as failed has its
 * own status and log read (pve_task_check: the message carries its exit
 * status and last log lines); so has one the listing leaves out (it
 * cannot tell), when it is due. Each task has its looks by its kind
 * (pve_task_delay: a create in about a second, a download in minutes),
 * counted from when it was joined, not from each listing's reply: the
 * reply's latency (20 ms each in bench/scale.sh) otherwise pushed every
 * later look back, so a one-second task meant for the look at 1.05 s
 * was found at 1.19 s. A listing serves every task of the node; it
 * counts as a task's look when it went out at most half a step before
 * that look was due (so the looks of tasks started within that much of
 * each other share listings: per node about one listing per half step,
 * whatever the number of tasks). Once a listing shows one of them
 * ended, the rest of the node's are looked at every ENDING_MS at most,
 * for ENDING_FOR_MS after the last end seen (pve_task_next_look).
 *
 * pve_watch: the waiters are threads (the VM phase, one per VM). The
 * waiters of one node form a group. Whoever finds nobody listing
 * becomes the group's lister for one tick: waits until the first member
 * is due (in steps, so a member that joins sooner is not kept waiting),
 * lists once, and marks every member the listing decides; the others
 * wait on a condition variable. A member that joined after a listing
 * started is not judged by it.
 *
 * pve_tasks_wait: one thread follows n tasks the same way.
 *
 * A node whose listing fails is polled per task from then on.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "provider/proxmox/proxmox.h"
#include "util/proc.h"

enum seen {
	SEEN_RUNNING,     /* listed as running (or not looked at yet) */
	SEEN_OK,          /* listed as ended OK or with warnings */
	SEEN_FAILED,      /* listed as ended otherwise: read its status and log */
	SEEN_ABSENT,      /* not in the listing: ask the task when due */
};

static long
mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* What the listing says of one task. */
static enum seen
judge(json_t *data, const char *upid)
{
	json_t *e;
	size_t i;

	json_array_foreach(data, i, e) {
		const char *u = json_string_value(json_object_get(e, "upid"));
		const char *st = json_string_value(json_object_get(e, "status"));

		if (!u || strcmp(u, upid))
			continue;
		if (!st || !strcasecmp(st, "running"))
			return SEEN_RUNNING;
		if (!strcmp(st, "OK") || !strncmp(st, "WARNINGS", 8))
			return SEEN_OK;
		return SEEN_FAILED;
	}
	return SEEN_ABSENT;
}

/* One listing of node: the tasks started since `since` (the oldest
 * followed there), enough of them for n followed tasks and their
 * neighbours. */
static int
list_node(struct pve *p, const char *node, size_t n, long long since,
	  json_t **out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/tasks", node);
	struct pve_params q;
	int r;

	pve_params_init(&q);
	pve_params_add(&q, "source", "all");
	if (since >= 0)
		pve_params_addf(&q, "since", "%lld", since);
	pve_params_addf(&q, "limit", "%zu", n * 4 + 50);
	r = pve_call(p, "GET", path, &q, out, err);
	if (r == 0 && !json_is_array(*out))
		r = err_set(err, ERR_FAIL, "GET %s: expected a list", path);
	pve_params_release(&q);
	free(path);
	return r;
}

/*
 * pve_task_next_look (proxmox.h): once a task of the group has ended
 * (ending), the others (started about when it did, mostly of its kind)
 * end soon: they are looked at every ENDING_MS at most, so the last of
 * many started over a few hundred milliseconds is not found a whole
 * back-off step late.
 */
#define ENDING_MS 50
#define ENDING_FOR_MS 1000

long
pve_task_next_look(const struct pve *p, const char *upid, long *sched,
		   unsigned *ticks, long sent, long now, bool ending)
{
	while (*sched <= sent + pve_task_delay(p, upid, *ticks - 1) / 2 ||
	       *sched <= now)
		*sched += pve_task_delay(p, upid, (*ticks)++);
	return ending && *sched > now + ENDING_MS ? now + ENDING_MS : *sched;
}

/* Has the group seen a task end recently enough to look at the rest
 * every ENDING_MS (ended: when it last did, or -1)? */
static bool
is_ending(long ended, long now)
{
	return ended >= 0 && now - ended < ENDING_FOR_MS;
}

/* ---- pve_watch: threads ------------------------------------------------ */

struct waiter {
	const char *upid;
	long long start;           /* the UPID's start time */
	long sched;                /* next look of its schedule (monotonic ms) */
	long due;                  /* next look: sched, or sooner while ending */
	unsigned ticks;
	unsigned long join_seq;
	enum seen seen;
	pthread_cond_t cv;         /* woken when it has something to do */
	struct waiter *next;
};

struct group {
	char *node;
	struct waiter *head;
	size_t members;
	bool listing;              /* a member is listing for the group */
	bool broken;               /* a listing failed: per-task polling */
	long ended;                /* a listing last saw a task end, or -1 */
	unsigned long seq;         /* listings started */
	struct group *next;
};

/* Each waiter sleeps on its own condition and is woken only when it has
 * something to do: its task left the listing, the group's listing broke,
 * or the group needs a new lister (the one it had left). One condition
 * for all, broadcast after every listing, woke 200 VMs' threads several
 * times a second for nothing: a third of strata's CPU in a destroy of
 * 200 VMs went to those wakeups and the lock they then queued on
 * (perf, bench/destroy.sh 200). */
struct pve_watch {
	pthread_mutex_t mu;
	struct group *groups;
};

struct pve_watch *
pve_watch_new(void)
{
	struct pve_watch *w = xcalloc(1, sizeof(*w));

	pthread_mutex_init(&w->mu, NULL);
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
	pthread_mutex_destroy(&w->mu);
	free(w);
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
	g->ended = -1;
	g->next = w->groups;
	w->groups = g;
	return g;
}

static void
join(struct group *g, struct waiter *me, struct pve *p)
{
	me->sched = me->due = mono_ms() + pve_task_delay(p, me->upid, me->ticks++);
	me->join_seq = g->seq;
	me->seen = SEEN_RUNNING;
	me->next = g->head;
	g->head = me;
	if (!g->members++)
		g->ended = -1;
}

/* Wake the members that have something to do (all: every member). */
static void
wake(struct group *g, bool all)
{
	struct waiter *m;

	for (m = g->head; m; m = m->next)
		if (all || m->seen != SEEN_RUNNING)
			pthread_cond_signal(&m->cv);
}

static void
leave(struct group *g, struct waiter *me)
{
	struct waiter **pp;

	for (pp = &g->head; *pp; pp = &(*pp)->next)
		if (*pp == me) {
			*pp = me->next;
			g->members--;
			break;
		}
	/* nobody listing for those left: one of them takes it on */
	if (g->head && !g->listing)
		pthread_cond_signal(&g->head->cv);
}

/* One tick of the group's lister (called locked, returns locked). */
static void
lister_tick(struct pve_watch *w, struct group *g, struct pve *p)
{
	struct err lerr = ERR_INIT;
	json_t *data = NULL;
	struct waiter *m;
	long long since = -1;
	long now = mono_ms(), due = -1, sent;
	unsigned long s;
	size_t members;
	int r;

	/* Members the last listing decided are on their way out. */
	for (m = g->head; m; m = m->next)
		if ((m->seen == SEEN_RUNNING || m->seen == SEEN_ABSENT) &&
		    (due < 0 || m->due < due))
			due = m->due;
	if (due < 0)
		return;
	g->listing = true;
	if (due > now) {
		/* In steps: a member joining meanwhile may be due sooner. */
		long step = due - now > 250 ? 250 : due - now;
		bool slept;

		pthread_mutex_unlock(&w->mu);
		slept = proc_sleep_ms(step);
		pthread_mutex_lock(&w->mu);
		if (!slept || mono_ms() < due) {
			/* the caller, still a member, comes back to list */
			g->listing = false;
			return;
		}
	}
	s = ++g->seq;
	members = g->members;
	for (m = g->head; m; m = m->next)
		if (m->start >= 0 && (since < 0 || m->start < since))
			since = m->start;
	pthread_mutex_unlock(&w->mu);
	sent = mono_ms();
	r = list_node(p, g->node, members, since, &data, &lerr);
	pthread_mutex_lock(&w->mu);
	now = mono_ms();
	if (r < 0) {
		g->broken = true;
	} else {
		bool ending;

		for (m = g->head; m; m = m->next)
			if (m->join_seq < s &&
			    (m->seen = judge(data, m->upid)) != SEEN_RUNNING)
				g->ended = now;
		ending = is_ending(g->ended, now);
		/* The look of every member due about now; the others keep
		 * theirs (sooner while the group ends). */
		for (m = g->head; m; m = m->next)
			if (m->join_seq < s && m->seen == SEEN_RUNNING)
				m->due = pve_task_next_look(p, m->upid, &m->sched,
							    &m->ticks, sent, now,
							    ending);
	}
	json_decref(data);
	g->listing = false;
	wake(g, g->broken);
}

/* pve_watch_wait as a member of group g (w->mu held, me joined). */
static int
member_wait(struct pve_watch *w, struct group *g, struct waiter *me,
	    struct pve *p, long timeout_ms, struct err *err)
{
	const char *upid = me->upid;
	long start = mono_ms();
	int r = 0;

	for (;;) {
		long left_ms = timeout_ms > 0 ? timeout_ms - (mono_ms() - start) : 0;

		if (me->seen == SEEN_OK ||
		    (me->seen != SEEN_RUNNING && (me->seen == SEEN_FAILED || mono_ms() >= me->due))) {
			bool stopped = false;

			leave(g, me);
			pthread_mutex_unlock(&w->mu);
			if (me->seen == SEEN_OK)
				return 0;
			if ((r = pve_task_check(p, upid, &stopped, err)) < 0 || stopped)
				return r;
			/* Not listed yet still running: back in the group. */
			pthread_mutex_lock(&w->mu);
			join(g, me, p);
			continue;
		}
		if (g->broken) {
			leave(g, me);
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
			/* until woken, or its own look is due (a task the
			 * listing no longer shows), or a second at most: the
			 * timeout and an interrupt are seen by then */
			long wait_ms = 1000, now = mono_ms();
			struct timespec ts;

			if (me->seen == SEEN_ABSENT && me->due - now < wait_ms)
				wait_ms = me->due > now ? me->due - now : 1;
			if (timeout_ms > 0 && left_ms < wait_ms)
				wait_ms = left_ms > 0 ? left_ms : 1;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&me->cv, &w->mu, &ts);
		}
	}
	leave(g, me);
	pthread_mutex_unlock(&w->mu);
	return r;
}

int
pve_watch_wait(struct pve_watch *w, struct pve *p, const char *upid,
	       long timeout_ms, struct err *err)
{
	struct waiter me = { .upid = upid };
	struct group *g;
	char *node;
	int r;

	if (!w)
		return pve_task_wait(p, upid, timeout_ms, err);
	if (!(node = pve_upid_node(upid)))
		return err_set(err, ERR_FAIL, "'%s' is not a task id", upid);
	me.start = pve_upid_starttime(upid);
	pthread_cond_init(&me.cv, NULL);
	pthread_mutex_lock(&w->mu);
	g = group_of(w, node);
	free(node);
	join(g, &me, p);
	/* returns with w->mu released and me out of the group */
	r = member_wait(w, g, &me, p, timeout_ms, err);
	pthread_cond_destroy(&me.cv);
	return r;
}

/* ---- pve_tasks_wait: one thread, n tasks ------------------------------- */

struct one {
	char *node;
	long long start;
	long sched;                /* next look of its schedule */
	long due;                  /* next look: sched, or sooner while ending */
	unsigned ticks;
	bool done;
};

/* Does a task of node carry the flag (its listing failed)? */
static bool
node_flag(const struct one *t, const bool *flag, size_t n, const char *node)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].node && flag[i] && !strcmp(t[i].node, node))
			return true;
	return false;
}

/* When a listing of node last saw one of its tasks end (ended[i], for
 * task i's node), or -1. */
static long
node_ended(const struct one *t, const long *ended, size_t n, const char *node)
{
	long e = -1;
	size_t i;

	for (i = 0; i < n; i++)
		if (t[i].node && ended[i] > e && !strcmp(t[i].node, node))
			e = ended[i];
	return e;
}

/* Read task i's own status (it is due, or listed as failed); sent: when
 * the read went out. */
static int
ask(struct pve *p, const char *upid, struct one *t, struct err *e)
{
	bool stopped = false;
	long sent = mono_ms();
	int r = pve_task_check(p, upid, &stopped, e);

	if (r < 0 || stopped)
		t->done = true;
	else
		t->due = pve_task_next_look(p, upid, &t->sched, &t->ticks, sent,
					    mono_ms(), false);
	return r;
}

int
pve_tasks_wait(struct pve *p, char *const *upids, size_t n, long timeout_ms,
	       struct err *errs)
{
	struct one *t = xcalloc(n + 1, sizeof(*t));
	bool *broken = xcalloc(n + 1, sizeof(*broken));
	long *ended = xcalloc(n + 1, sizeof(*ended));
	long begin = mono_ms();
	size_t i, j;
	int r = 0;

	for (i = 0; i < n; i++) {
		err_clear(&errs[i]);
		if (!upids[i] || !(t[i].node = pve_upid_node(upids[i]))) {
			t[i].done = true;
			if (upids[i]) {
				int ri = err_set(&errs[i], ERR_FAIL, "'%s' is not a task id",
						 upids[i]);

				r = r ? r : ri;
			}
			continue;
		}
		t[i].start = pve_upid_starttime(upids[i]);
		t[i].sched = t[i].due = begin + pve_task_delay(p, upids[i], t[i].ticks++);
		ended[i] = -1;
	}
	for (;;) {
		long now = mono_ms(), due = -1;

		for (i = 0; i < n; i++)
			if (!t[i].done && (due < 0 || t[i].due < due))
				due = t[i].due;
		if (due < 0)
			break;
		if (due > now && !proc_sleep_ms(due - now)) {
			for (i = 0; i < n; i++)
				if (!t[i].done) {
					int ri = err_set(&errs[i], ERR_INTR, "interrupted "
							 "while waiting for task %s (it "
							 "goes on in Proxmox)", upids[i]);

					t[i].done = true;
					r = r ? r : ri;
				}
			break;
		}
		now = mono_ms();
		/* Each node with a task due: one listing for all its tasks. */
		for (i = 0; i < n; i++) {
			json_t *data = NULL;
			struct err lerr = ERR_INIT;
			long long since = -1;
			size_t members = 0;
			bool listed = false, ending;
			long sent = mono_ms(), back;

			if (t[i].done || t[i].due > now)
				continue;
			if (!node_flag(t, broken, n, t[i].node)) {
				for (j = 0; j < n; j++)
					if (!t[j].done && !strcmp(t[j].node, t[i].node)) {
						members++;
						if (t[j].start >= 0 && (since < 0 || t[j].start < since))
							since = t[j].start;
					}
				if (list_node(p, t[i].node, members, since, &data, &lerr) == 0)
					listed = true;
				else
					broken[i] = true;
			}
			back = mono_ms();
			for (j = i; listed && j < n; j++)
				if (!t[j].done && !strcmp(t[j].node, t[i].node) &&
				    judge(data, upids[j]) != SEEN_RUNNING)
					ended[i] = back;
			ending = is_ending(node_ended(t, ended, n, t[i].node), back);
			for (j = i; j < n; j++) {
				enum seen s;
				int rj;

				if (t[j].done || strcmp(t[j].node, t[i].node))
					continue;
				s = listed ? judge(data, upids[j]) : SEEN_ABSENT;
				if (s == SEEN_OK) {
					t[j].done = true;
					continue;
				}
				if (s == SEEN_RUNNING) {
					t[j].due = pve_task_next_look(p, upids[j],
								      &t[j].sched,
								      &t[j].ticks,
								      sent, back,
								      ending);
					continue;
				}
				if (s == SEEN_ABSENT && t[j].due > now)
					continue;
				if ((rj = ask(p, upids[j], &t[j], &errs[j])) < 0 && !r)
					r = rj;
			}
			json_decref(data);
		}
		for (i = 0; i < n; i++)
			if (!t[i].done && timeout_ms > 0 && mono_ms() - begin > timeout_ms) {
				int ri = err_set(&errs[i], ERR_FAIL, "task %s still running "
						 "after %lds", upids[i], timeout_ms / 1000);

				t[i].done = true;
				r = r ? r : ri;
			}
	}
	for (i = 0; i < n; i++)
		free(t[i].node);
	free(t);
	free(broken);
	free(ended);
	return r;
}
