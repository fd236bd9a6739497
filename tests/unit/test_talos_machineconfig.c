/*
 * Golden tests: with upstream's stability secrets and the "base" and
 * "overrides" inputs, the generated configs must equal the upstream
 * fixtures (compared as parsed YAML documents).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <libfyaml.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talos/machineconfig.h"
#include "talos/patch.h"
#include "talos/secrets.h"
#include "util/fs.h"

#define REF SRCDIR "/../shared/reference/talos/fixtures/stability"

static int
load_docs(struct ydocs *d, const char *path)
{
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;
	int r;

	if ((r = fs_read_file(&b, path, 1 << 20, &err)) == 0)
		r = ydocs_parse(d, b.ptr, b.len, &err);
	if (r < 0)
		print_error("%s: %s\n", path, err.msg);
	buf_release(&b);
	return r;
}

static struct talos_secrets *
stability_secrets(void)
{
	struct talos_secrets *s = NULL;
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;

	assert_int_equal(fs_read_file(&b, REF "/secrets.yaml", 1 << 20, &err), 0);
	if (talos_secrets_parse(&s, b.ptr, b.len, &err) < 0)
		fail_msg("%s", err.msg);
	buf_release(&b);
	return s;
}

static void
check_golden(const struct mc_input *in, bool cp, const char *golden,
	     const char *patch)
{
	struct talos_secrets *s;
	struct ydocs got = YDOCS_INIT, reparsed = YDOCS_INIT, want = YDOCS_INIT;
	struct buf text = BUF_INIT;
	struct err err = ERR_INIT;

	if (!fs_exists(golden)) {
		print_message("skip: %s absent\n", golden);
		skip();
	}
	s = stability_secrets();
	assert_int_equal(talos_mc_generate(&got, in, s, cp, &err), 0);
	if (patch) {
		struct ydocs p = YDOCS_INIT;

		assert_int_equal(load_docs(&p, patch), 0);
		if (talos_patch_apply(&got, &p, &err) < 0)
			fail_msg("patch: %s", err.msg);
		ydocs_release(&p);
	}
	assert_int_equal(ydocs_emit(&text, &got, &err), 0);
	/* Compare what a reader of the file sees: parse the emitted text. */
	assert_int_equal(ydocs_parse(&reparsed, text.ptr, text.len, &err), 0);
	assert_int_equal(load_docs(&want, golden), 0);
	if (!ydocs_equal(&reparsed, &want)) {
		struct buf w = BUF_INIT;

		ydocs_emit(&w, &want, &err);
		print_error("--- got\n%s\n--- want\n%s\n", text.ptr, w.ptr);
		buf_release(&w);
		fail_msg("%s differs", golden);
	}
	buf_release(&text);
	ydocs_release(&got);
	ydocs_release(&reparsed);
	ydocs_release(&want);
	talos_secrets_free(s);
}

static void
base_input(struct mc_input *in, int minor)
{
	memset(in, 0, sizeof(*in));
	in->cluster_name = "base";
	in->endpoint = "https://base:6443";
	in->k8s_version = "1.28.0";
	in->contract_minor = minor;
}

static const char *const sans[] = { "foo", "bar" };
static const char *const kargs[] = { "foo=bar", "bar=baz" };
static const char *const sysctls[] = { "foo", "bar" };
static const char *const cni_urls[] = { "https://example.com/cni.yaml" };
static const struct mc_mirror mirrors[] = {
	{ "ghcr.io", "https://ghcr.io.my-mirror.com" },
};

static void
overrides_input(struct mc_input *in, int minor)
{
	base_input(in, minor);
	in->sans = sans;
	in->n_sans = 2;
	in->allow_scheduling_on_controlplanes = true;
	in->dns_domain = "example.com";
	in->install_disk = "/dev/vda";
	in->kernel_args = kargs;
	in->n_kernel_args = 2;
	in->local_api_port = 5443;
	in->sysctl_kv = sysctls;
	in->n_sysctls = 1;
	in->cni_name = "custom";
	in->cni_urls = cni_urls;
	in->n_cni_urls = 1;
	in->mirrors = mirrors;
	in->n_mirrors = 1;
}

#define GOLDEN(fn, kind, minor, cp, file)					\
static void fn(void **state)							\
{										\
	struct mc_input in;							\
	(void)state;								\
	kind##_input(&in, minor);						\
	check_golden(&in, cp, REF "/v1." #minor "/" file,			\
		     strcmp(#kind, "overrides") == 0 ? REF "/patch.yaml" : NULL); \
}

GOLDEN(test_mc__base_cp_112, base, 12, true, "base-controlplane.yaml")
GOLDEN(test_mc__base_worker_112, base, 12, false, "base-worker.yaml")
GOLDEN(test_mc__base_cp_113, base, 13, true, "base-controlplane.yaml")
GOLDEN(test_mc__base_worker_113, base, 13, false, "base-worker.yaml")
GOLDEN(test_mc__overrides_cp_112, overrides, 12, true, "overrides-controlplane.yaml")
GOLDEN(test_mc__overrides_worker_112, overrides, 12, false, "overrides-worker.yaml")
GOLDEN(test_mc__overrides_cp_113, overrides, 13, true, "overrides-controlplane.yaml")
GOLDEN(test_mc__overrides_worker_113, overrides, 13, false, "overrides-worker.yaml")

static void
test_mc__rejects_bad_input(void **state)
{
	struct ydocs got = YDOCS_INIT;
	struct err err = ERR_INIT;
	struct mc_input in;

	(void)state;
	base_input(&in, 11);
	assert_true(talos_mc_generate(&got, &in, NULL, true, &err) < 0);
	assert_non_null(strstr(err.msg, "1.11"));
	base_input(&in, 12);
	in.endpoint = "http://x:6443";
	assert_true(talos_mc_generate(&got, &in, NULL, true, &err) < 0);
	assert_int_equal(got.n, 0);
}

/* The comparison itself must see differences (a sanity check on it). */
static void
test_mc__compare_detects_difference(void **state)
{
	struct ydocs a = YDOCS_INIT, b = YDOCS_INIT, c = YDOCS_INIT;
	struct err err = ERR_INIT;

	(void)state;
	if (!fs_exists(REF "/v1.12/base-worker.yaml"))
		skip();
	assert_int_equal(load_docs(&a, REF "/v1.12/base-worker.yaml"), 0);
	assert_int_equal(load_docs(&b, REF "/v1.13/base-worker.yaml"), 0);
	assert_false(ydocs_equal(&a, &b));
	assert_int_equal(ydocs_parse(&c, "a: \"\"\n", 6, &err), 0);
	ydocs_release(&b);
	assert_int_equal(ydocs_parse(&b, "a: x\n", 5, &err), 0);
	assert_false(ydocs_equal(&b, &c));
	ydocs_release(&b);
	/* An empty plain value is null, not the empty string. */
	assert_int_equal(ydocs_parse(&b, "a:\n", 3, &err), 0);
	assert_false(ydocs_equal(&b, &c));
	ydocs_release(&a);
	ydocs_release(&b);
	ydocs_release(&c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mc__base_cp_112),
		cmocka_unit_test(test_mc__base_worker_112),
		cmocka_unit_test(test_mc__base_cp_113),
		cmocka_unit_test(test_mc__base_worker_113),
		cmocka_unit_test(test_mc__overrides_cp_112),
		cmocka_unit_test(test_mc__overrides_worker_112),
		cmocka_unit_test(test_mc__overrides_cp_113),
		cmocka_unit_test(test_mc__overrides_worker_113),
		cmocka_unit_test(test_mc__rejects_bad_input),
		cmocka_unit_test(test_mc__compare_detects_difference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
