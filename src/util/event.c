#include "util/event.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"


#define MAX_SINKS 4

static struct {
	event_sink_fn fn;
	void *arg;
} sinks[MAX_SINKS];
static size_t n_sinks;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static long long seq;
static double t_begin, t_phase;
static char phase[64];

static double
mono(void)
{
	return (double)clock_mono_ms() / 1000.0;
}

static double
round_ms(double s)
{
	return (double)(long long)(s * 1000.0 + 0.5) / 1000.0;
}

void
event_sink_add(event_sink_fn fn, void *arg)
{
	pthread_mutex_lock(&mu);
	if (n_sinks < MAX_SINKS) {
		sinks[n_sinks].fn = fn;
		sinks[n_sinks].arg = arg;
		n_sinks++;
	}
	pthread_mutex_unlock(&mu);
}

bool
event_active(void)
{
	return n_sinks > 0;
}

void
event_sink_stdout(const json_t *ev, void *arg)
{
	(void)arg;
	if (json_dumpf(ev, stdout, JSON_COMPACT | JSON_ENSURE_ASCII) == 0) {
		fputc('\n', stdout);
		fflush(stdout);
	}
}

/* Stamp obj with type, time and seq, hand it to every sink, free it. */
static void
emit(const char *type, json_t *obj)
{
	struct timespec ts;
	struct tm tm;
	char when[40];
	size_t i;

	if (!obj)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + strlen(when), sizeof(when) - strlen(when), ".%03ldZ",
		 ts.tv_nsec / 1000000L);
	pthread_mutex_lock(&mu);
	json_object_set_new(obj, "type", json_string(type));
	json_object_set_new(obj, "time", json_string(when));
	json_object_set_new(obj, "seq", json_integer(++seq));
	for (i = 0; i < n_sinks; i++)
		sinks[i].fn(obj, sinks[i].arg);
	pthread_mutex_unlock(&mu);
	json_decref(obj);
}

static json_t *
str_or_null(const char *s)
{
	return s ? json_string(s) : json_null();
}

void
event_begin(const char *command, const char *env)
{
	t_begin = mono();
	seq = 0;
	phase[0] = '\0';
	if (!event_active())
		return;
	emit("start", json_pack("{s:s, s:o}", "command", command,
				"env", str_or_null(env)));
}

void
event_phase_start(const char *name, const char *title)
{
	pthread_mutex_lock(&mu);
	snprintf(phase, sizeof(phase), "%s", name);
	t_phase = mono();
	pthread_mutex_unlock(&mu);
	if (!event_active())
		return;
	emit("phase_start", json_pack("{s:s, s:o}", "phase", name,
				      "title", str_or_null(title)));
}

void
event_phase_end(const char *name, const char *result, const char *error)
{
	double el;

	pthread_mutex_lock(&mu);
	el = round_ms(mono() - t_phase);
	phase[0] = '\0';
	pthread_mutex_unlock(&mu);
	if (!event_active())
		return;
	emit("phase_end", json_pack("{s:s, s:s, s:f, s:o}", "phase", name,
				    "result", result, "elapsed_s", el,
				    "error", str_or_null(error)));
}

void
event_step(const char *item, const char *state, const char *text)
{
	event_step_with(item, state, text, NULL);
}

void
event_step_with(const char *item, const char *state, const char *text,
		json_t *extra)
{
	json_t *o;

	if (!event_active()) {
		json_decref(extra);
		return;
	}
	pthread_mutex_lock(&mu);
	o = json_pack("{s:o, s:o, s:s, s:o}", "phase",
		      phase[0] ? json_string(phase) : json_null(),
		      "item", str_or_null(item), "state", state,
		      "text", str_or_null(text));
	pthread_mutex_unlock(&mu);
	if (extra) {
		json_object_update_missing(o, extra);
		json_decref(extra);
	}
	emit("step", o);
}

void
event_warning(const char *text)
{
	if (event_active())
		emit("warning", json_pack("{s:o}", "text", str_or_null(text)));
}

void
event_note(const char *text)
{
	if (event_active())
		emit("note", json_pack("{s:o}", "text", str_or_null(text)));
}

void
event_plan(json_t *plan)
{
	if (!event_active() || !plan) {
		json_decref(plan);
		return;
	}
	emit("plan", json_pack("{s:o}", "plan", plan));
}

void
event_error(const char *text)
{
	if (event_active())
		emit("error", json_pack("{s:o}", "text", str_or_null(text)));
}

double
event_elapsed(void)
{
	return t_begin > 0 ? round_ms(mono() - t_begin) : 0;
}

void
event_summary(json_t *obj)
{
	if (!event_active() || !obj) {
		json_decref(obj);
		return;
	}
	if (!json_object_get(obj, "elapsed_s"))
		json_object_set_new(obj, "elapsed_s", json_real(event_elapsed()));
	emit("summary", obj);
}

void
event_end(void)
{
	pthread_mutex_lock(&mu);
	n_sinks = 0;
	pthread_mutex_unlock(&mu);
	fflush(stdout);
}
