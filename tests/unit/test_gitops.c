/*
 * gitops: SOPS files round trip and refuse tampering, a wrong key and
 * unsorted entries; the cluster's age key is made once (0600) or taken from
 * gitops.sops.identity; the Flux paths.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "age/age.h"
#include "config/config.h"
#include "gitops/gitops.h"
#include "gitops/sops.h"
#include "util/fs.h"
#include "testutil.h"

static char tmpdir[64];

static int
setup(void **state)
{
	(void)state;
	strcpy(tmpdir, "/tmp/strata-gitops-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int
teardown(void **state)
{
	(void)state;
	return tu_sh("rm -rf '%s'", tmpdir) == 0 ? 0 : -1;
}

static void
test_gitops__sops_roundtrip(void **state)
{
	struct err err = ERR_INIT;
	struct buf out = BUF_INIT;
	struct sops_plain p;
	char *id, *rec, *id2, *rec2;

	(void)state;
	assert_int_equal(age_keygen(&id, &rec, &err), 0);
	assert_int_equal(age_keygen(&id2, &rec2, &err), 0);
	const char *recips[2] = { rec, rec2 };
	struct sops_entry e[2] = { { "password", "hunter2" }, { "token", "s3cr\"et: x" } };
	assert_int_equal(sops_secret_encrypt(&out, "s", "ns", e, 2, recips, 2,
					     1764626400, &err), 0);
	assert_null(strstr(out.ptr, "hunter2"));
	assert_null(strstr(out.ptr, "s3cr"));
	assert_non_null(strstr(out.ptr, "lastmodified: \"2025-12-01T22:00:00Z\""));
	assert_non_null(strstr(out.ptr, "encrypted_regex: ^(data|stringData)$"));
	assert_non_null(strstr(out.ptr, "    password: ENC[AES256_GCM,data:"));
	/* Either recipient opens it. */
	assert_int_equal(sops_decrypt(&p, out.ptr, out.len, id2, &err), 0);
	assert_string_equal(sops_plain_get(&p, "stringData:token"), "s3cr\"et: x");
	assert_string_equal(sops_plain_get(&p, "stringData:password"), "hunter2");
	assert_string_equal(sops_plain_get(&p, "metadata:namespace"), "ns");
	assert_int_equal(p.nr, 2);
	assert_string_equal(p.recipients[1], rec2);
	sops_plain_release(&p);
	assert_int_equal(sops_decrypt(&p, out.ptr, out.len, id, &err), 0);
	sops_plain_release(&p);

	/* A key that is not a recipient. */
	char *id3, *rec3;
	assert_int_equal(age_keygen(&id3, &rec3, &err), 0);
	assert_int_equal(sops_decrypt(&p, out.ptr, out.len, id3, &err), -1);
	assert_non_null(strstr(err.msg, "opens none of the 2 data keys"));

	/* A clear value changed: the MAC catches it. */
	struct buf t = BUF_INIT;
	buf_add(&t, out.ptr, out.len);
	char *ns = strstr(t.ptr, "namespace: ns");
	ns[12] = 'x';
	assert_int_equal(sops_decrypt(&p, t.ptr, t.len, id, &err), -1);
	assert_string_equal(err.msg, "sops: the MAC does not match (the file was altered)");
	/* An encrypted value moved to another key: its path is bound. */
	buf_reset(&t);
	buf_add(&t, out.ptr, out.len);
	memcpy(strstr(t.ptr, "password:"), "passw0rd:", 9);
	assert_int_equal(sops_decrypt(&p, t.ptr, t.len, id, &err), -1);
	assert_non_null(strstr(err.msg, "does not decrypt"));
	buf_release(&t);

	/* Entries must be sorted (so the MAC holds in Flux's order too). */
	struct sops_entry u[2] = { { "token", "a" }, { "password", "b" } };
	buf_reset(&out);
	assert_true(sops_secret_encrypt(&out, "s", "ns", u, 2, recips, 1, 0, &err) < 0);
	assert_non_null(strstr(err.msg, "sorted"));
	buf_release(&out);
	free(rec);
	free(rec2);
	free(rec3);
	age_free_secret(id);
	age_free_secret(id2);
	age_free_secret(id3);
}

static void
test_gitops__agekey_made_once(void **state)
{
	struct config cfg;
	struct err err = ERR_INIT;
	struct stat st;
	char *rec = NULL, *rec2 = NULL, path[128];
	bool created;
	struct buf b = BUF_INIT;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.name = (char *)"lab";
	cfg.dir = tmpdir;
	assert_int_equal(gitops_agekey(&rec, &created, &cfg, tmpdir, &err), 0);
	assert_true(created);
	snprintf(path, sizeof(path), "%s/" GITOPS_AGEKEY, tmpdir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(fs_read_file(&b, path, 4096, &err), 0);
	assert_memory_equal(b.ptr, "AGE-SECRET-KEY-1", 16);
	assert_int_equal(b.len, 75);   /* one line */
	assert_int_equal(gitops_agekey(&rec2, &created, &cfg, tmpdir, &err), 0);
	assert_false(created);
	assert_string_equal(rec, rec2);
	/* age-keygen -y agrees on the recipient. */
	if (tu_sh("command -v age-keygen >/dev/null") == 0) {
		char cmd[256], line[128] = "";
		FILE *fp;

		snprintf(cmd, sizeof(cmd), "age-keygen -y %s", path);
		fp = popen(cmd, "r");
		assert_non_null(fgets(line, sizeof(line), fp));
		pclose(fp);
		line[strcspn(line, "\n")] = '\0';
		assert_string_equal(line, rec);
	}
	buf_release_secret(&b);
	free(rec);
	free(rec2);
	unlink(path);

	/* From gitops.sops.identity (file:PATH) instead. */
	char *id, *want;
	assert_int_equal(age_keygen(&id, &want, &err), 0);
	snprintf(path, sizeof(path), "%s/mine.key", tmpdir);
	char *text = xasprintf("# my key\n%s\n", id);
	assert_int_equal(fs_write_atomic(path, text, strlen(text), 0600, &err), 0);
	cfg.gitops.sops_identity.kind = SECRET_FILE;
	cfg.gitops.sops_identity.text = (char *)"mine.key";
	assert_int_equal(gitops_agekey(&rec, &created, &cfg, tmpdir, &err), 0);
	assert_true(created);
	assert_string_equal(rec, want);
	free(rec);
	free(want);
	/* Another identity configured later: refused, the key is kept. */
	char *id2, *rec2b;
	assert_int_equal(age_keygen(&id2, &rec2b, &err), 0);
	assert_int_equal(fs_write_atomic(path, id2, strlen(id2), 0600, &err), 0);
	assert_true(gitops_agekey(&rec, &created, &cfg, tmpdir, &err) < 0);
	assert_non_null(strstr(err.msg, "holds another key than gitops.sops.identity"));
	assert_null(rec);
	age_free_secret(id2);
	free(rec2b);
	age_free_secret(text);
	age_free_secret(id);
}

static void
test_gitops__flux_paths(void **state)
{
	struct config cfg;
	struct gitops_paths p;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.name = (char *)"prod";
	gitops_paths(&p, &cfg);
	assert_string_equal(p.flux, "./cluster/kubernetes/flux/overlays/prod");
	assert_string_equal(p.platform, "./cluster/kubernetes/platform/overlays/prod");
	assert_string_equal(p.apps, "./cluster/kubernetes/apps/overlays/prod");
	gitops_paths_release(&p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_gitops__sops_roundtrip),
		cmocka_unit_test(test_gitops__agekey_made_once),
		cmocka_unit_test(test_gitops__flux_paths),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
