/*
 * event: the typed event stream of a long command (apply, destroy).
 *
 * Every event is one JSON object (jansson) with at least
 *	"type"  one of the EV_* names below
 *	"time"  UTC, RFC 3339 with milliseconds ("2026-12-01T21:58:03.123Z")
 *	"seq"   1, 2, 3 ... in emission order
 * and the fields listed per function. Events go to every registered sink;
 * with no sink, emitting costs a branch. The schema is documented in
 * docs/json.md; fields are only ever added.
 *
 *	event_sink_add(event_sink_stdout, NULL);      // apply -o json
 *	event_begin("apply", cfg->name);
 *	event_phase_start("vms", "create, update and delete VMs");
 *	event_step("lab-cp-1", "running", "creating vmid 1000 on pve1");
 *	event_phase_end("vms", "done", NULL);
 *	event_summary(summary);                        // steals the object
 *	event_end();                                    // flushes, drops sinks
 *
 * A sink is a function plus its argument; it gets each event (borrowed)
 * under the stream's lock, so sinks see events one at a time, in order,
 * even when worker threads emit them (progress steps of parallel VMs).
 * event_sink_stdout writes one compact object per line and flushes; a file
 * sink (the apply history) is a function of the same shape.
 *
 * Events never carry secret values: their text comes from the same
 * messages the human output prints (util/err.h's rule).
 */
#ifndef STRATA_UTIL_EVENT_H
#define STRATA_UTIL_EVENT_H

#include <stdbool.h>
#include <stdio.h>

#include <jansson.h>

typedef void (*event_sink_fn)(const json_t *ev, void *arg);

/* Register a sink (at most 4). */
void event_sink_add(event_sink_fn fn, void *arg);
/* The -o json sink: one object per line on stdout (arg unused). */
void event_sink_stdout(const json_t *ev, void *arg);
/* True when at least one sink is registered. */
bool event_active(void);

/* "start": {"command": "apply", "env": NAME}; resets seq and the clock. */
void event_begin(const char *command, const char *env);
/* "phase_start": {"phase": journal name, "title": human title}.
 * The phase becomes the current one for event_step. */
void event_phase_start(const char *phase, const char *title);
/* "phase_end": {"phase", "result": "done" | "skipped" | "failed" |
 * "interrupted" | "dry_run", "elapsed_s": number, "error": text or null}. */
void event_phase_end(const char *phase, const char *result, const char *error);
/* "step": {"phase": current or null, "item": VM or node name,
 * "state": "running" | "ok" | "failed", "text": what happens}. */
void event_step(const char *item, const char *state, const char *text);
/* The same with the fields of extra added (steals it; NULL: none), e.g.
 * a roll's node step: {"roll", "component", "image"} (docs/json.md). */
void event_step_with(const char *item, const char *state, const char *text,
		     json_t *extra);
/* "warning" / "note": {"text"} (out_warn; out_note and out_step). */
void event_warning(const char *text);
void event_note(const char *text);
/* "plan": {"plan": the object 'strata plan -o json' prints}; steals plan. */
void event_plan(json_t *plan);
/* "error": {"text"}: every error message printed (out_error), so a
 * failure of several VMs is several events; the summary says how the
 * command ended. */
void event_error(const char *text);
/* "summary": the caller's object plus "type"/"time"/"seq" and
 * "elapsed_s" (since event_begin) unless set; steals obj. Always the last
 * event of a stream that ran to an end (success, failure or refusal);
 * apply and destroy put "result", "exit_code", "resumable" and their
 * counts in it (docs/json.md). */
void event_summary(json_t *obj);
/* Seconds since event_begin (0 before). */
double event_elapsed(void);
/* Flush and drop every sink. */
void event_end(void);

#endif
