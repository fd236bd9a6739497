#include "state/history.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "util/event.h"
#include "util/fs.h"
#include "util/out.h"

struct history {
	char *path;                /* ENV/history/<time>-<command>.jsonl */
	char *env_dir;
	int keep;
	struct buf lines;
	bool failed;               /* a write failed: said once, not again */
};

static void
flush(struct history *h)
{
	struct err err = ERR_INIT;

	if (h->failed)
		return;
	if (fs_write_atomic(h->path, h->lines.ptr, h->lines.len, FS_MODE_SECRET,
			    &err) < 0) {
		h->failed = true;
		out_warn("history: %s", err.msg);
	}
}

static void
sink(const json_t *ev, void *arg)
{
	struct history *h = arg;
	const char *type = json_string_value(json_object_get(ev, "type"));
	char *s = json_dumps(ev, JSON_COMPACT | JSON_PRESERVE_ORDER);

	if (!s)
		return;
	buf_adds(&h->lines, s);
	buf_addch(&h->lines, '\n');
	free(s);
	if (type && (!strcmp(type, "phase_end") || !strcmp(type, "summary")))
		flush(h);
}

static void
config_sha256(char out[65], const char *env_dir)
{
	struct buf text = BUF_INIT;
	struct err err = ERR_INIT;
	unsigned char md[32];
	unsigned int n = 0;
	char *p = fs_join(env_dir, "config.yml");
	int i;

	out[0] = 0;
	if (fs_read_file(&text, p, 1u << 20, &err) == 0 &&
	    EVP_Digest(text.ptr, text.len, md, &n, EVP_sha256(), NULL) == 1 &&
	    n == 32)
		for (i = 0; i < 32; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	buf_release(&text);
	free(p);
}

int
history_open(struct history **out, const char *env_dir, const char *command,
	     const char *env_name, const char *version, const char *plan_json,
	     int keep, struct err *err)
{
	struct history *h;
	struct timeval tv;
	struct tm tm;
	char stamp[40], iso[40], sha[65], *dir, *name;
	json_t *hdr;
	char *s;
	int r;

	*out = NULL;
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
	strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(stamp + strlen(stamp), sizeof(stamp) - strlen(stamp), ".%03ldZ",
		 (long)(tv.tv_usec / 1000));
	snprintf(iso + strlen(iso), sizeof(iso) - strlen(iso), ".%03ldZ",
		 (long)(tv.tv_usec / 1000));
	dir = fs_join(env_dir, HISTORY_DIR);
	if ((r = fs_mkdir_p(dir, FS_MODE_DIR_PRIVATE, err)) < 0) {
		free(dir);
		return err_wrap(err, "history");
	}
	name = xasprintf("%s-%s.jsonl", stamp, command);
	h = xcalloc(1, sizeof(*h));
	h->path = fs_join(dir, name);
	h->env_dir = xstrdup(env_dir);
	h->keep = keep > 0 ? keep : 50;
	free(name);
	free(dir);
	config_sha256(sha, env_dir);
	hdr = json_pack("{s:s, s:i, s:s, s:s, s:s, s:s, s:s}", "type", "history",
			"format_version", 1, "command", command,
			"env", env_name ? env_name : "", "strata_version",
			version, "config_sha256", sha, "time", iso);
	if (plan_json) {
		json_t *plan = json_loads(plan_json, 0, NULL);

		if (plan)
			json_object_set_new(hdr, "plan", plan);
	}
	s = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
	buf_adds(&h->lines, s);
	buf_addch(&h->lines, '\n');
	free(s);
	json_decref(hdr);
	if (fs_write_atomic(h->path, h->lines.ptr, h->lines.len, FS_MODE_SECRET,
			    err) < 0) {
		r = err_wrap(err, "history");
		history_close(h);
		return r;
	}
	event_sink_add(sink, h);
	*out = h;
	return 0;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
history_list(char ***names, size_t *n, const char *env_dir, struct err *err)
{
	char *dir = fs_join(env_dir, HISTORY_DIR);
	struct dirent *de;
	size_t cap = 0;
	DIR *d;

	*names = NULL;
	*n = 0;
	if (!(d = opendir(dir))) {
		int e = errno;

		free(dir);
		if (e == ENOENT)
			return 0;
		return err_sys(err, e, "cannot read '%s/%s'", env_dir, HISTORY_DIR);
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (de->d_name[0] == '.' || l < 7 ||
		    strcmp(de->d_name + l - 6, ".jsonl"))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			*names = xrealloc(*names, cap * sizeof(char *));
		}
		(*names)[(*n)++] = xstrdup(de->d_name);
	}
	closedir(d);
	free(dir);
	if (*n)
		qsort(*names, *n, sizeof(char *), cmp_names);
	return 0;
}

void
history_list_free(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

void
history_close(struct history *h)
{
	struct err err = ERR_INIT;
	char **names;
	size_t n, i;

	if (!h)
		return;
	flush(h);
	if (history_list(&names, &n, h->env_dir, &err) == 0) {
		for (i = 0; n > (size_t)h->keep && i < n - (size_t)h->keep; i++) {
			char *rel = xasprintf("%s/%s", HISTORY_DIR, names[i]);
			char *p = fs_join(h->env_dir, rel);

			if (fs_remove(p, &err) < 0)
				out_warn("history: %s", err.msg);
			free(p);
			free(rel);
		}
		history_list_free(names, n);
	}
	buf_release(&h->lines);
	free(h->path);
	free(h->env_dir);
	free(h);
}
