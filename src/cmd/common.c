#include "cmd/cmd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fs.h"
#include "util/out.h"

int
cmd_wants_help(int argc, char **argv, const char *cmd)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			cmd_help_print(cmd_help_find(cmd), stdout);
			return 1;
		}
	}
	return 0;
}

int
cmd_usage_error(const char *cmd, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&b, fmt, ap);
	va_end(ap);
	out_error("%s; see 'strata %s --help'", b.ptr, cmd);
	buf_release(&b);
	return 2;
}

char *
cmd_examples_dir(void)
{
	const char *env = getenv("STRATA_EXAMPLES");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return cmd_path_normalise(env);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		const char *up[] = { "/../examples", "/../../examples",
				     "/../../../examples", "/../share/strata/examples" };
		char *slash;
		size_t i;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash)
			*slash = '\0';
		for (i = 0; i < sizeof(up) / sizeof(up[0]); i++) {
			char *cand = xasprintf("%s%s", self, up[i]);

			if (fs_is_dir(cand)) {
				char *norm = cmd_path_normalise(cand);

				free(cand);
				return norm;
			}
			free(cand);
		}
	}
	return xstrdup("/usr/local/share/strata/examples");
}

char *
cmd_path_normalise(const char *path)
{
	return fs_path_normalise(path);
}

char *
cmd_env_dir(const char *env)
{
	char *cand, *r;
	struct stat st;

	if (strchr(env, '/') || !strcmp(env, ".") || !strcmp(env, "..")) {
		/* DIR/config.yml (any file, or a *.yml / *.yaml that is not
		 * a folder): its folder */
		size_t n = strlen(env);
		bool yml = (n > 4 && !strcmp(env + n - 4, ".yml")) ||
			   (n > 5 && !strcmp(env + n - 5, ".yaml"));
		int isdir = stat(env, &st) == 0 ? S_ISDIR(st.st_mode) : -1;

		if (isdir == 0 || (isdir < 0 && yml)) {
			const char *slash = strrchr(env, '/');
			char *d = slash ? xstrndup(env, (size_t)(slash - env + 1))
					: xstrdup(".");

			r = cmd_path_normalise(d);
			free(d);
			return r;
		}
		return cmd_path_normalise(env);
	}
	cand = fs_join(env, "config.yml");
	r = fs_exists(cand) ? xstrdup(env) : xasprintf("environments/%s", env);
	free(cand);
	return r;
}

char *
cmd_env_dir_new(const char *env)
{
	if (strchr(env, '/') || !strcmp(env, ".") || !strcmp(env, ".."))
		return cmd_path_normalise(env);
	return xasprintf("environments/%s", env);
}

int
cmd_positional(const char **env, const char *arg, const char *cmd)
{
	if (arg[0] == '-' && arg[1])
		return cmd_usage_error(cmd, "unknown option '%s'", arg);
	if (*env)
		return cmd_usage_error(cmd, "unexpected argument '%s'", arg);
	*env = arg;
	return 0;
}

int
cmd_output_flag(int argc, char **argv, int *i, int *json, const char *cmd)
{
	const char *a = argv[*i];

	if (!strcmp(a, "-ojson") || !strcmp(a, "--output=json")) {
		*json = 1;
		return 1;
	}
	if (strcmp(a, "-o") && strcmp(a, "--output"))
		return 0;
	if (*i + 1 >= argc || strcmp(argv[*i + 1], "json"))
		return cmd_usage_error(cmd, "%s takes 'json'", a);
	(*i)++;
	*json = 1;
	return 1;
}
