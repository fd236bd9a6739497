/* Unit tests for src/config/talos_schema: the committed table is what
 * scripts/gen-talos-schema.py derives from the reference schema; upstream's
 * own configs pass it; typos, wrong kinds and legacy keys are found. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/talos_schema.h"
#include "talos/tyaml.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif
#define REF SRCDIR "/../shared/reference/talos"

struct found {
	int errors, warnings;
	char last[1024];
	char path[256];
};

static void
collect(void *ctx, enum diag_level lvl, struct fy_node *n, const char *path,
	const char *msg)
{
	struct found *f = ctx;

	if (lvl == DIAG_ERROR)
		f->errors++;
	else
		f->warnings++;
	snprintf(f->last, sizeof(f->last), "%s", msg);
	snprintf(f->path, sizeof(f->path), "%s", path ? path : "");
}

/* Check every document of a YAML text; returns the findings. */
static struct found
check_text(const char *text, int minor)
{
	struct ydocs d = YDOCS_INIT;
	struct err e = ERR_INIT;
	struct found f = { 0 };
	size_t i;

	assert_int_equal(ydocs_parse(&d, text, strlen(text), &e), 0);
	for (i = 0; i < d.n; i++)
		talos_schema_check(fy_document_root(d.v[i]), minor, "p", collect, &f);
	ydocs_release(&d);
	return f;
}

static void
test_talos_schema__table_matches_reference(void **state)
{
	struct buf want = BUF_INIT, got = BUF_INIT;
	struct err e = ERR_INIT;
	char cmd[1024], chunk[4096];
	FILE *p;
	size_t n;

	if (!fs_exists(REF "/config.schema.json")) {
		printf("skipped: %s is absent, cannot regenerate the table\n", REF);
		skip();
	}
	snprintf(cmd, sizeof(cmd), "python3 '%s/scripts/gen-talos-schema.py' '%s'",
		 SRCDIR, REF);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
		buf_add(&got, chunk, n);
	assert_int_equal(pclose(p), 0);
	assert_int_equal(fs_read_file(&want, SRCDIR "/src/config/talos_schema_data.c",
				      4 << 20, &e), 0);
	if (want.len != got.len || memcmp(want.ptr, got.ptr, got.len))
		fail_msg("src/config/talos_schema_data.c differs from what "
			 "scripts/gen-talos-schema.py makes of the reference; "
			 "regenerate it");
	buf_release(&want);
	buf_release(&got);
}

/* Upstream's generated configs and patches are valid by definition. */
static void
test_talos_schema__upstream_configs_pass(void **state)
{
	static const char *const files[] = {
		"fixtures/stability/v1.12/base-controlplane.yaml",
		"fixtures/stability/v1.12/base-worker.yaml",
		"fixtures/stability/v1.12/overrides-controlplane.yaml",
		"fixtures/stability/v1.12/overrides-worker.yaml",
		"fixtures/configpatcher/multidoc/strategic1.yaml",
		"fixtures/configpatcher/multidoc/strategic2.yaml",
		"fixtures/configpatcher/patchdelete/strategic1.yaml",
		"fixtures/configpatcher/patchdelete/strategic2.yaml",
		"fixtures/configpatcher/patchdelete/controlplane_orig.yaml",
		"fixtures/configpatcher/apply/expected.yaml",
		"fixtures/stability/v1.13/base-controlplane.yaml",
		"fixtures/stability/v1.13/base-worker.yaml",
		NULL,
	};
	size_t i;

	if (!fs_exists(REF "/fixtures")) {
		printf("skipped: %s/fixtures is absent\n", REF);
		skip();
	}
	for (i = 0; files[i]; i++) {
		struct buf b = BUF_INIT;
		struct err e = ERR_INIT;
		char *path = xasprintf("%s/%s", REF, files[i]);
		struct found f;

		if (fs_read_file(&b, path, 4 << 20, &e) < 0) {
			printf("skipped %s: %s\n", files[i], e.msg);
			free(path);
			continue;
		}
		f = check_text(b.ptr, 12);
		if (f.errors)
			fail_msg("%s: %d errors, last: %s: %s", files[i], f.errors,
				 f.path, f.last);
		buf_release(&b);
		free(path);
	}
}

static void
test_talos_schema__unknown_key_with_suggestion(void **state)
{
	struct found f = check_text("machine:\n  install:\n    dsk: /dev/sda\n", 12);

	assert_int_equal(f.errors, 1);
	assert_string_equal(f.path, "p.machine.install.dsk");
	assert_string_equal(f.last, "unknown key in the Talos config; did you mean 'disk'?");
}

static void
test_talos_schema__wrong_kinds_never_quote_values(void **state)
{
	struct found f;

	f = check_text("machine:\n  install:\n    wipe: \"secret-ish\"\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.last, "expected true or false, got a quoted string");
	f = check_text("machine:\n  network:\n    kubespan: [1]\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.last, "expected a mapping, got a list");
	f = check_text("machine:\n  sysctls:\n    a.b: {x: 1}\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.path, "p.machine.sysctls.a.b");
	f = check_text("apiVersion: v1alpha1\nkind: LinkConfig\nname: net0\nmtu: \"1500\"\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.last, "expected an integer (without quotes), got a quoted string");
	f = check_text("apiVersion: v1alpha1\nkind: HostnameConfig\nauto: sometimes\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.last, "expected one of off, stable");
}

static void
test_talos_schema__documents_by_kind(void **state)
{
	struct found f;

	f = check_text("apiVersion: v1alpha1\nkind: HostnameConfg\nhostname: a\n", 12);
	assert_int_equal(f.errors, 1);
	assert_string_equal(f.last, "'HostnameConfg' is not a Talos config document kind; "
				    "did you mean 'HostnameConfig'?");
	f = check_text("apiVersion: v1alpha1\nkind: Layer2VIPConfig\nname: 10.0.0.5\nlink: net0\n", 12);
	assert_int_equal(f.errors + f.warnings, 0);
	/* strategic merge deletes are patches, not config keys */
	f = check_text("machine:\n  network:\n    $patch: delete\n", 12);
	assert_int_equal(f.errors + f.warnings, 0);
}

static void
test_talos_schema__legacy_keys_warn(void **state)
{
	struct found f = check_text("machine:\n  network:\n    interfaces:\n"
				    "      - deviceSelector: {physical: true}\n"
				    "        addresses: [10.0.0.5/24]\n", 12);

	assert_int_equal(f.errors, 0);
	assert_int_equal(f.warnings, 1);
	assert_non_null(strstr(f.last, "deprecated"));
	/* the legacy subtree is checked too */
	f = check_text("machine:\n  network:\n    interfaces:\n      - adresses: [10.0.0.5/24]\n", 12);
	assert_int_equal(f.errors, 1);
	assert_non_null(strstr(f.last, "did you mean 'addresses'?"));
}

static void
test_talos_schema__newer_minor_warns(void **state)
{
	struct found f = check_text("machine:\n  install:\n    dsk: /dev/sda\n", 13);

	assert_int_equal(f.errors, 0);
	assert_int_equal(f.warnings, 1);
	assert_non_null(strstr(f.last, "(checked against Talos v1.12; strata has no v1.13 schema)"));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_talos_schema__table_matches_reference),
		cmocka_unit_test(test_talos_schema__upstream_configs_pass),
		cmocka_unit_test(test_talos_schema__unknown_key_with_suggestion),
		cmocka_unit_test(test_talos_schema__wrong_kinds_never_quote_values),
		cmocka_unit_test(test_talos_schema__documents_by_kind),
		cmocka_unit_test(test_talos_schema__legacy_keys_warn),
		cmocka_unit_test(test_talos_schema__newer_minor_warns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
