/*
 * history: what every apply and destroy did, kept in the env folder.
 *
 * ENV/history/<UTC time>-<command>.jsonl (0600) holds one JSON object per
 * line: first a header {"type": "history", "format_version": 1,
 * "command", "env", "strata_version", "config_sha256", "time", "plan": the
 * plan it executed, as 'strata plan -o json' prints it}, then the
 * command's event stream (util/event.h: the same events `-o json` prints),
 * ending with the "summary" event when the command ran to an end. Events
 * never carry secret values. An entry is written only once the command
 * goes ahead (after confirmation): a refused apply leaves none.
 *
 * The file is rewritten through fs_write_atomic after every phase and at
 * the end, so a killed command leaves its history up to the last phase
 * that finished. history_close prunes the oldest entries beyond `keep`.
 *
 *	if (history_open(&h, e.dir, "apply", cfg->name, STRATA_VERSION,
 *			 plan_json, cfg->history.keep, &err) < 0) ...
 *	... the command emits its events ...
 *	event_end();
 *	history_close(h);
 */
#ifndef STRATA_STATE_HISTORY_H
#define STRATA_STATE_HISTORY_H

#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define HISTORY_DIR "history"

struct history;

int history_open(struct history **out, const char *env_dir,
		 const char *command, const char *env_name, const char *version,
		 const char *plan_json, int keep, struct err *err);
/* Write the last events, prune old entries, free (NULL-safe). */
void history_close(struct history *h);

/* The entries of env_dir's history, oldest first (names, malloc'd). */
int history_list(char ***names, size_t *n, const char *env_dir,
		 struct err *err);
void history_list_free(char **names, size_t n);

#endif
