/*
 * diag: diagnostics for one config file, printed the way a compiler does:
 *
 *	config.yml:12:5: error: nodes.workers.nodes[1].ip: '10.0.0.300' is not an IPv4 address
 *
 * Every problem is collected (not just the first); diag_print sorts them by
 * position so the output reads top to bottom.
 */
#ifndef STRATA_CONFIG_DIAG_H
#define STRATA_CONFIG_DIAG_H

#include <stddef.h>
#include <stdio.h>

enum diag_level { DIAG_ERROR = 0, DIAG_WARNING };

struct diag_item {
	enum diag_level level;
	int line, col;      /* 1-based; 0 when there is no position */
	char *path;         /* "nodes.workers.nodes[1].ip", or NULL */
	char *msg;
	char *file;         /* another file (a patch), or NULL: diag.file */
	size_t seq;         /* insertion order, keeps the sort stable */
};

struct diag {
	char *file;         /* as shown in messages */
	struct diag_item *v;
	size_t n, cap;
	size_t errors, warnings;
};

void diag_init(struct diag *d, const char *file);
void diag_release(struct diag *d);
void diag_add(struct diag *d, enum diag_level level, int line, int col,
	      const char *path, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
/* The same, for a finding in another file (a talos patch file). */
void diag_add_file(struct diag *d, const char *file, enum diag_level level,
		   int line, int col, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 7, 8)));
/* The file an item is in. */
const char *diag_item_file(const struct diag *d, const struct diag_item *it);
/* Sort by file (the config first) and position. */
void diag_sort(struct diag *d);
/* Sort and print one line per item. */
void diag_print(struct diag *d, FILE *fp);
/* Sorted items as a JSON array of {file, line, col, level, path, message};
 * line, col and path are null when there is none. Caller decrefs. */
struct json_t;
struct json_t *diag_json(struct diag *d);
/* "N errors, M warnings" style summary, or nothing when clean. */
void diag_summary(const struct diag *d, FILE *fp);

#endif
