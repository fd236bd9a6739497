#include "util/yaml.h"

#include <libfyaml.h>
#include <string.h>

struct fy_document *
yaml_parse(const char *text, size_t len, struct err *err)
{
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd;
	struct fy_document *doc;

	fy_diag_cfg_default(&dcfg);
	dcfg.fp = NULL;
	dcfg.colorize = false;
	fyd = fy_diag_create(&dcfg);
	if (!fyd) {
		err_set(err, ERR_FAIL, "cannot set up the YAML parser");
		return NULL;
	}
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2 | FYPCF_JSON_NONE;
	pcfg.diag = fyd;
	doc = fy_document_build_from_string(&pcfg, text, len);
	if (!doc) {
		struct fy_diag_error *e;
		void *it = NULL;

		e = fy_diag_errors_iterate(fyd, &it);
		if (e)
			err_set(err, ERR_FAIL, "%d:%d: %.*s", e->line + 1,
				e->column + 1, (int)strcspn(e->msg, "\n"), e->msg);
		else
			err_set(err, ERR_FAIL, "empty or invalid YAML");
	}
	fy_diag_destroy(fyd);
	return doc;
}
