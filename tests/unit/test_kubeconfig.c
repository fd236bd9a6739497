/* Unit tests for src/kube/kubeconfig: a tar.gz made by tar(1) and gzip the
 * way Talos streams it, gunzip, tar lookup, server rewrite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeconfig.h"
#include "util/buf.h"
#include "util/fs.h"

#include "testutil.h"

static const char kc[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"clusters:\n"
	"- name: prod\n"
	"  cluster:\n"
	"    server: https://10.20.0.11:6443\n"
	"    certificate-authority-data: Q0E=\n"
	"contexts:\n"
	"- name: admin@prod\n"
	"  context: {cluster: prod, user: admin@prod}\n"
	"current-context: admin@prod\n"
	"users:\n"
	"- name: admin@prod\n"
	"  user: {client-certificate-data: Qw==, client-key-data: Sw==}\n";

static void
load_targz(struct buf *out, const char *member)
{
	char dir[] = "/tmp/strata-kc.XXXXXX";
	struct err e = ERR_INIT;
	char *p;

	assert_non_null(mkdtemp(dir));
	p = xasprintf("%s/%s", dir, member);
	assert_int_equal(fs_write_atomic(p, kc, sizeof(kc) - 1, 0600, &e), 0);
	assert_int_equal(tu_sh("cd %s && printf 'x' > other && tar --format=ustar -czf a.tgz other %s",
			       dir, member), 0);
	free(p);
	p = xasprintf("%s/a.tgz", dir);
	assert_int_equal(fs_read_file(out, p, 1 << 20, &e), 0);
	free(p);
	tu_sh("rm -rf %s", dir);
}

static void
test_kubeconfig__extract_and_point_at_vip(void **state)
{
	struct buf tgz = BUF_INIT, out = BUF_INIT;
	struct err e = ERR_INIT;

	load_targz(&tgz, "kubeconfig");
	assert_int_equal(kubeconfig_from_targz(&out, tgz.ptr, tgz.len,
					       "https://10.20.0.10:6443", &e), 0);
	assert_non_null(strstr(out.ptr, "server: https://10.20.0.10:6443"));
	assert_null(strstr(out.ptr, "10.20.0.11"));
	assert_non_null(strstr(out.ptr, "client-key-data: Sw=="));
	assert_non_null(strstr(out.ptr, "current-context: admin@prod"));
	buf_release(&out);
	/* Without a server the file comes out as it was. */
	assert_int_equal(kubeconfig_from_targz(&out, tgz.ptr, tgz.len, NULL, &e), 0);
	assert_string_equal(out.ptr, kc);
	buf_release(&out);
	buf_release(&tgz);
}

static void
test_kubeconfig__errors(void **state)
{
	struct buf tgz = BUF_INIT, out = BUF_INIT;
	struct err e = ERR_INIT;

	load_targz(&tgz, "notit");
	assert_true(kubeconfig_from_targz(&out, tgz.ptr, tgz.len, NULL, &e) < 0);
	assert_string_equal(e.msg, "kubeconfig from Talos: no 'kubeconfig' in the archive");
	assert_true(kubeconfig_from_targz(&out, tgz.ptr, tgz.len / 2, NULL, &e) < 0);
	assert_non_null(strstr(e.msg, "gzip"));
	assert_true(kubeconfig_from_targz(&out, "garbage", 7, NULL, &e) < 0);
	assert_non_null(strstr(e.msg, "not valid gzip data"));
	assert_true(kubeconfig_set_server(&out, "a: [", 4, "https://x", &e) < 0);
	assert_true(kubeconfig_set_server(&out, "a: 1\n", 5, "https://x", &e) < 0);
	assert_string_equal(e.msg, "kubeconfig has no clusters list");
	buf_release(&out);
	buf_release(&tgz);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kubeconfig__extract_and_point_at_vip),
		cmocka_unit_test(test_kubeconfig__errors),
	};

	return cmocka_run_group_tests_name("kubeconfig", tests, NULL, NULL);
}
