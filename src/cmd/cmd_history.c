#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "state/history.h"
#include "util/fs.h"
#include "util/out.h"

#define ENTRY_MAX (64u << 20)

static json_t *
line_json(const char *line, size_t n)
{
	return json_loadb(line, n, 0, NULL);
}

/* First and last line of a history file as JSON (either may be NULL). */
static void
ends(const struct buf *b, json_t **first, json_t **last)
{
	const char *p = b->ptr, *end = b->ptr + b->len, *nl, *lp = NULL;
	size_t ln = 0;

	*first = *last = NULL;
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl)
		*first = line_json(p, (size_t)(nl - p));
	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		if (nl > p) {
			lp = p;
			ln = (size_t)(nl - p);
		}
		p = nl + 1;
	}
	if (lp)
		*last = line_json(lp, ln);
}

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static int
read_entry(struct buf *b, const char *dir, const char *name, struct err *err)
{
	char *rel = xasprintf("%s/%s", HISTORY_DIR, name);
	char *p = fs_join(dir, rel);
	int r = fs_read_file(b, p, ENTRY_MAX, err);

	free(rel);
	free(p);
	return r;
}

static void
list(const char *dir, char **names, size_t n, int json)
{
	size_t i;

	if (!json)
		printf("%-3s %-24s %-8s %-12s %9s  %s\n", "#", "STARTED (UTC)",
		       "COMMAND", "RESULT", "ELAPSED", "ENTRY");
	else
		printf("[");
	for (i = n; i-- > 0;) {
		struct buf b = BUF_INIT;
		struct err err = ERR_INIT;
		json_t *first = NULL, *last = NULL;
		const char *result = "incomplete";
		char el[32] = "-";

		if (read_entry(&b, dir, names[i], &err) == 0)
			ends(&b, &first, &last);
		if (last && !strcmp(str(last, "type"), "summary")) {
			result = str(last, "result");
			snprintf(el, sizeof(el), "%.1fs",
				 json_number_value(json_object_get(last, "elapsed_s")));
		}
		if (json) {
			json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:s, s:o}",
					      "index", (int)(n - i), "entry", names[i],
					      "time", first ? str(first, "time") : "",
					      "command", first ? str(first, "command") : "",
					      "result", result,
					      "exit_code", last && json_object_get(last, "exit_code")
					      ? json_incref(json_object_get(last, "exit_code"))
					      : json_null());
			char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);

			printf("%s%s", i + 1 == n ? "" : ",", s);
			free(s);
			json_decref(o);
		} else {
			printf("%-3zu %-24s %-8s %-12s %9s  %s\n", n - i,
			       first ? str(first, "time") : "?",
			       first ? str(first, "command") : "?", result, el,
			       names[i]);
		}
		json_decref(first);
		json_decref(last);
		buf_release(&b);
	}
	if (json)
		printf("]\n");
}

/* One entry, an event per line: time, type, phase or item, text. */
static void
show(const struct buf *b)
{
	const char *p = b->ptr, *end = b->ptr + b->len, *nl;

	while (p < end && (nl = memchr(p, '\n', (size_t)(end - p)))) {
		json_t *ev = line_json(p, (size_t)(nl - p));
		const char *type = str(ev, "type");
		char what[160] = "";

		if (!strcmp(type, "history")) {
			printf("%s %s of '%s' by strata %s, config.yml sha256 %s\n",
			       str(ev, "time"), str(ev, "command"), str(ev, "env"),
			       str(ev, "strata_version"), str(ev, "config_sha256"));
		} else {
			if (!strcmp(type, "phase_start") || !strcmp(type, "phase_end"))
				snprintf(what, sizeof(what), "%s %s", str(ev, "phase"),
					 !strcmp(type, "phase_end") ? str(ev, "result")
								    : str(ev, "title"));
			else if (!strcmp(type, "step"))
				snprintf(what, sizeof(what), "%s %s: %s", str(ev, "item"),
					 str(ev, "state"), str(ev, "text"));
			else if (!strcmp(type, "summary"))
				snprintf(what, sizeof(what), "%s (exit %lld)",
					 str(ev, "result"), (long long)json_integer_value(
						 json_object_get(ev, "exit_code")));
			else
				snprintf(what, sizeof(what), "%s", str(ev, "text"));
			char *clean = out_clean(what);

			printf("%s %-11s %s\n", str(ev, "time"), type, clean);
			free(clean);
		}
		json_decref(ev);
		p = nl + 1;
	}
}

int
cmd_history(int argc, char **argv)
{
	struct err err = ERR_INIT;
	const char *env = NULL, *which = NULL;
	char **names = NULL, *dir = NULL;
	size_t n = 0, i;
	int json = 0, a, r, rc = 1;

	if (cmd_wants_help(argc, argv, "history"))
		return 0;
	for (a = 1; a < argc; a++) {
		if ((r = cmd_output_flag(argc, argv, &a, &json, "history")) == 2)
			return r;
		if (r == 1)
			continue;
		if (argv[a][0] == '-')
			return cmd_usage_error("history", "unknown option '%s'", argv[a]);
		if (!env)
			env = argv[a];
		else if (!which)
			which = argv[a];
		else
			return cmd_usage_error("history", "too many arguments");
	}
	if (!env)
		return cmd_usage_error("history", "missing ENV");
	dir = cmd_env_dir(env);
	if (!fs_is_dir(dir)) {
		err_set(&err, ERR_USAGE, "'%s' is not an env folder", dir);
		goto fail;
	}
	if (history_list(&names, &n, dir, &err) < 0)
		goto fail;
	if (!which) {
		if (!n && !json)
			out_note("%s has no history yet (apply and destroy write it)", dir);
		else
			list(dir, names, n, json);
		rc = 0;
		goto out;
	}
	{
		char *endp;
		long k = strtol(which, &endp, 10);
		const char *name = NULL;
		struct buf b = BUF_INIT;

		if (*which && !*endp && k >= 1 && (size_t)k <= n)
			name = names[n - (size_t)k];
		for (i = 0; !name && i < n; i++)
			if (!strcmp(names[i], which))
				name = names[i];
		if (!name) {
			err_set(&err, ERR_USAGE, "no history entry '%s' (1..%zu, newest "
				"first, or a name 'strata history %s' lists)", which, n,
				env);
			goto fail;
		}
		if (read_entry(&b, dir, name, &err) < 0) {
			buf_release(&b);
			goto fail;
		}
		if (json)
			fwrite(b.ptr, 1, b.len, stdout);
		else
			show(&b);
		buf_release(&b);
	}
	rc = 0;
	goto out;
fail:
	out_error("history '%s': %s", env, err.msg);
	rc = err_exit_code(&err);
out:
	history_list_free(names, n);
	free(dir);
	return rc;
}
