#include "util/yaml.h"

#include <libfyaml.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

struct fy_document *
yaml_parse_each(const char *text, size_t len, yaml_error_fn fn, void *ctx,
		size_t *ndiag)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd;
	struct fy_document *doc;
	struct fy_diag_error *e;
	void *it = NULL;
	size_t n = 0;

	if (ndiag)
		*ndiag = 0;
	yaml_diag_cfg(&dcfg);
	fyd = fy_diag_create(&dcfg);
	if (!fyd) {
		fn(ctx, 0, 0, "cannot set up the YAML parser");
		if (ndiag)
			*ndiag = 1;
		return NULL;
	}
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = fyd;
	doc = fy_document_build_from_string(&pcfg, text, len);
	while (!doc && (e = fy_diag_errors_iterate(fyd, &it))) {
		char *msg = xstrdup(e->msg ? e->msg : "syntax error");
		size_t ml = strlen(msg);

		n++;
		while (ml && (msg[ml - 1] == '\n' || msg[ml - 1] == ' '))
			msg[--ml] = '\0';
		if (e->type >= FYET_ERROR)
			fn(ctx, e->line + 1, e->column + 1, msg);
		free(msg);
	}
	if (ndiag)
		*ndiag = n;
	fy_diag_destroy(fyd);
	return doc;
}

static void
first_error(void *ctx, int line, int col, const char *msg)
{
	struct err *err = ctx;

	if (err->code == 0)
		err_set(err, ERR_FAIL, "%d:%d: %s", line, col, msg);
}

struct fy_document *
yaml_parse(const char *text, size_t len, struct err *err)
{
	struct fy_document *doc;

	err_clear(err);
	doc = yaml_parse_each(text, len, first_error, err, NULL);
	if (!doc && err->code == 0)
		err_set(err, ERR_FAIL, "empty or invalid YAML");
	return doc;
}

void
yaml_diag_cfg(struct fy_diag_cfg *c)
{
	memset(c, 0, sizeof(*c));   /* no fp, no output_fn: silent */
	c->level = FYET_WARNING;
	c->module_mask = ~0u;
}

static struct fy_diag *quiet_diag;

static void
quiet_diag_init(void)
{
	struct fy_diag_cfg dcfg;

	yaml_diag_cfg(&dcfg);
	quiet_diag = fy_diag_create(&dcfg);
}

struct fy_diag *
yaml_quiet_diag(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, quiet_diag_init);
	return quiet_diag;
}

struct fy_document *
yaml_new_document(void)
{
	struct fy_parse_cfg pcfg;

	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
	pcfg.diag = yaml_quiet_diag();
	return fy_document_create(&pcfg);
}
