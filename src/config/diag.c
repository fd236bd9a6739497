#include "config/diag.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/out.h"

void
diag_init(struct diag *d, const char *file)
{
	memset(d, 0, sizeof(*d));
	d->file = xstrdup(file ? file : "config.yml");
}

void
diag_release(struct diag *d)
{
	size_t i;

	for (i = 0; i < d->n; i++) {
		free(d->v[i].path);
		free(d->v[i].msg);
		free(d->v[i].file);
	}
	free(d->v);
	free(d->file);
	memset(d, 0, sizeof(*d));
}

static void
vadd(struct diag *d, const char *file, enum diag_level level, int line,
     int col, const char *path, const char *fmt, va_list ap)
{
	struct diag_item *it;
	struct buf b = BUF_INIT;

	if (d->n == d->cap) {
		d->cap = d->cap ? d->cap * 2 : 16;
		d->v = xrealloc(d->v, d->cap * sizeof(*d->v));
	}
	buf_vaddf(&b, fmt, ap);
	it = &d->v[d->n];
	it->level = level;
	it->line = line;
	it->col = col;
	it->path = path && *path ? xstrdup(path) : NULL;
	it->msg = buf_detach(&b, NULL);
	it->file = file ? xstrdup(file) : NULL;
	it->seq = d->n++;
	if (level == DIAG_ERROR)
		d->errors++;
	else
		d->warnings++;
}

void
diag_add(struct diag *d, enum diag_level level, int line, int col,
	 const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, NULL, level, line, col, path, fmt, ap);
	va_end(ap);
}

void
diag_add_file(struct diag *d, const char *file, enum diag_level level,
	      int line, int col, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vadd(d, file, level, line, col, path, fmt, ap);
	va_end(ap);
}

const char *
diag_item_file(const struct diag *d, const struct diag_item *it)
{
	return it->file ? it->file : d->file;
}

static int
cmp_item(const void *pa, const void *pb)
{
	const struct diag_item *a = pa, *b = pb;

	if (!a->file != !b->file)
		return a->file ? 1 : -1;
	if (a->file && strcmp(a->file, b->file))
		return strcmp(a->file, b->file);
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->col != b->col)
		return a->col < b->col ? -1 : 1;
	return a->seq < b->seq ? -1 : a->seq > b->seq;
}

void
diag_sort(struct diag *d)
{
	if (d->n > 1)
		qsort(d->v, d->n, sizeof(*d->v), cmp_item);
}

void
diag_print(struct diag *d, FILE *fp)
{
	int color = out_color();
	size_t i;

	diag_sort(d);
	for (i = 0; i < d->n; i++) {
		const struct diag_item *it = &d->v[i];
		const char *lvl = it->level == DIAG_ERROR ? "error" : "warning";

		if (color)
			fprintf(fp, "\033[1m");
		if (it->line > 0)
			fprintf(fp, "%s:%d:%d: ", diag_item_file(d, it), it->line,
				it->col);
		else
			fprintf(fp, "%s: ", diag_item_file(d, it));
		if (color)
			fprintf(fp, "\033[%sm%s:\033[0m ",
				it->level == DIAG_ERROR ? "1;31" : "1;35", lvl);
		else
			fprintf(fp, "%s: ", lvl);
		if (it->path)
			fprintf(fp, "%s: ", it->path);
		fprintf(fp, "%s\n", it->msg);
	}
}

void
diag_summary(const struct diag *d, FILE *fp)
{
	if (!d->errors && !d->warnings)
		return;
	fprintf(fp, "%zu error%s, %zu warning%s\n", d->errors,
		d->errors == 1 ? "" : "s", d->warnings,
		d->warnings == 1 ? "" : "s");
}

json_t *
diag_json(struct diag *d)
{
	json_t *arr = json_array();
	size_t i;

	diag_sort(d);
	for (i = 0; i < d->n; i++) {
		const struct diag_item *it = &d->v[i];
		json_t *o = json_object();

		json_object_set_new(o, "file", json_string(diag_item_file(d, it)));
		json_object_set_new(o, "line", it->line > 0 ? json_integer(it->line)
							    : json_null());
		json_object_set_new(o, "col", it->line > 0 ? json_integer(it->col)
							   : json_null());
		json_object_set_new(o, "level", json_string(it->level == DIAG_ERROR
								    ? "error"
								    : "warning"));
		json_object_set_new(o, "path", it->path ? json_string(it->path)
							: json_null());
		json_object_set_new(o, "message", json_string(it->msg));
		json_array_append_new(arr, o);
	}
	return arr;
}
