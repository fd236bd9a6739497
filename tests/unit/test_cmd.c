/* cmd/common.c: ENV forms and path normalisation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmd/cmd.h"

static void
expect_norm(const char *in, const char *want)
{
	char *got = cmd_path_normalise(in);

	assert_string_equal(got, want);
	free(got);
}

static void
test_cmd__path_normalise(void **state)
{
	(void)state;
	expect_norm("build/../examples", "examples");
	expect_norm("/work/x/build/../examples/", "/work/x/examples");
	expect_norm("a/./b//c/", "a/b/c");
	expect_norm("../a/../../b", "../../b");
	expect_norm("/../a", "/a");
	expect_norm("a/..", ".");
	expect_norm(".", ".");
	expect_norm("/", "/");
}

static void
expect_env(const char *arg, const char *want)
{
	char *got = cmd_env_dir(arg);

	assert_string_equal(got, want);
	free(got);
}

static void
test_cmd__env_forms(void **state)
{
	char tmpl[] = "/tmp/strata-cmd.XXXXXX", cwd[4096];
	char *d = mkdtemp(tmpl);
	FILE *f;

	(void)state;
	assert_non_null(d);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(d), 0);
	/* NAME: environments/NAME unless ./NAME holds a config.yml */
	expect_env("lab", "environments/lab");
	assert_int_equal(mkdir("lab", 0700), 0);
	expect_env("lab", "environments/lab");
	f = fopen("lab/config.yml", "w");
	assert_non_null(f);
	fclose(f);
	expect_env("lab", "lab");
	/* a path to the file: its folder; a missing *.yml too */
	expect_env("lab/config.yml", "lab");
	expect_env("./lab/config.yml", "lab");
	expect_env("other/config.yml", "other");
	expect_env("lab/", "lab");
	expect_env("./lab/../lab", "lab");
	expect_env(".", ".");
	unlink("lab/config.yml");
	rmdir("lab");
	assert_int_equal(chdir(cwd), 0);
	rmdir(d);
	/* init: never looks at the disk */
	{
		char *n = cmd_env_dir_new("lab");

		assert_string_equal(n, "environments/lab");
		free(n);
		n = cmd_env_dir_new("x/./lab/");
		assert_string_equal(n, "x/lab");
		free(n);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cmd__path_normalise),
		cmocka_unit_test(test_cmd__env_forms),
	};

	return cmocka_run_group_tests_name("cmd", tests, NULL, NULL);
}
