#include "util/progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/event.h"
#include "util/out.h"

struct item {
	char *name;
	char *step;
	double start;
	double end;
	int state;   /* 0 running, 1 ok, 2 failed */
};

struct progress {
	FILE *fp;
	bool tty;
	char *title;
	struct item *v;
	size_t n;
	size_t width;
	size_t drawn;
	double start;
	pthread_mutex_t mu;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
redraw(struct progress *p)
{
	double t = now();
	size_t i;

	if (p->drawn)
		fprintf(p->fp, "\033[%zuA", p->drawn);
	for (i = 0; i < p->n; i++) {
		struct item *it = &p->v[i];
		double el = (it->state ? it->end : t) - it->start;
		const char *mark = it->state == 1 ? "\033[32mok\033[0m"
				 : it->state == 2 ? "\033[31mfailed\033[0m" : "..";

		fprintf(p->fp, "\033[2K  %-*s %6.1fs  %s %s\n", (int)p->width,
			it->name, el, mark, it->state == 2 ? "(error below)"
			: it->step ? it->step : "");
	}
	p->drawn = p->n;
	fflush(p->fp);
}

static void
line(struct progress *p, size_t i)
{
	struct item *it = &p->v[i];
	time_t t = time(NULL);
	struct tm tm;
	char ts[16];

	localtime_r(&t, &tm);
	strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
	/* a failure's message is printed once, by whoever reports the error */
	fprintf(p->fp, "[%s] %-*s %6.1fs %s%s\n", ts, (int)p->width, it->name,
		(it->state ? it->end : now()) - it->start,
		it->state == 1 ? "ok: " : it->state == 2 ? "failed (error below)" : "",
		it->state == 2 ? "" : it->step ? it->step : "");
	fflush(p->fp);
}

struct progress *
progress_start(FILE *fp, const char *title, const char *const *names, size_t n)
{
	struct progress *p = xcalloc(1, sizeof(*p));
	size_t i;

	p->fp = fp;
	p->tty = isatty(fileno(fp)) && out_color();
	p->title = xstrdup(title);
	p->v = xcalloc(n + 1, sizeof(*p->v));
	p->n = n;
	p->start = now();
	pthread_mutex_init(&p->mu, NULL);
	for (i = 0; i < n; i++) {
		p->v[i].name = out_clean(names[i]);
		p->v[i].start = p->start;
		if (strlen(p->v[i].name) > p->width)
			p->width = strlen(p->v[i].name);
	}
	out_step("%s", title);
	return p;
}

static void
vset(struct progress *p, size_t i, int state, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;

	buf_vaddf(&b, fmt, ap);
	pthread_mutex_lock(&p->mu);
	if (i < p->n) {
		free(p->v[i].step);
		p->v[i].step = out_clean(b.ptr);
		p->v[i].state = state;
		if (state)
			p->v[i].end = now();
		if (p->tty)
			redraw(p);
		else
			line(p, i);
		event_step(p->v[i].name, state == 1 ? "ok" : state == 2 ? "failed"
			   : "running", p->v[i].step);
	}
	pthread_mutex_unlock(&p->mu);
	buf_release(&b);
}

void
progress_step(struct progress *p, size_t i, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(p, i, 0, fmt, ap);
	va_end(ap);
}

void
progress_done(struct progress *p, size_t i, bool ok, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vset(p, i, ok ? 1 : 2, fmt, ap);
	va_end(ap);
}

void
progress_stop(struct progress *p)
{
	size_t i, ok = 0, failed = 0;

	if (!p)
		return;
	for (i = 0; i < p->n; i++) {
		ok += p->v[i].state == 1;
		failed += p->v[i].state == 2;
		free(p->v[i].name);
		free(p->v[i].step);
	}
	fprintf(p->fp, "    %s: %zu done, %zu failed, %zu unfinished in %.1fs\n",
		p->title, ok, failed, p->n - ok - failed, now() - p->start);
	pthread_mutex_destroy(&p->mu);
	free(p->v);
	free(p->title);
	free(p);
}
