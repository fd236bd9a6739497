#include "cmd/cmd.h"

#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/fs.h"

int
cmd_wants_help(int argc, char **argv, const char *usage)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--"))
			break;
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage, stdout);
			return 1;
		}
	}
	return 0;
}

int
cmd_usage_error(const char *usage, const char *fmt, ...)
{
	va_list ap;

	fputs("error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fputs(usage, stderr);
	return 2;
}

char *
cmd_examples_dir(void)
{
	const char *env = getenv("STRATA_EXAMPLES");
	char self[PATH_MAX];
	ssize_t n;

	if (env && *env)
		return xstrdup(env);
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

			if (fs_is_dir(cand))
				return cand;
			free(cand);
		}
	}
	return xstrdup("/usr/local/share/strata/examples");
}

char *
cmd_env_dir(const char *env)
{
	size_t n = strlen(env);

	if (strchr(env, '/') || !strcmp(env, ".") || !strcmp(env, ".."))
		return n > 1 && env[n - 1] == '/' ? xstrndup(env, n - 1)
						  : xstrdup(env);
	return xasprintf("environments/%s", env);
}

int
cmd_positional(const char **env, const char *arg, const char *usage)
{
	if (arg[0] == '-' && arg[1])
		return cmd_usage_error(usage, "unknown option '%s'", arg);
	if (*env)
		return cmd_usage_error(usage, "unexpected argument '%s'", arg);
	*env = arg;
	return 0;
}

int
cmd_output_flag(int argc, char **argv, int *i, int *json, const char *usage)
{
	const char *a = argv[*i];

	if (!strcmp(a, "-ojson") || !strcmp(a, "--output=json")) {
		*json = 1;
		return 1;
	}
	if (strcmp(a, "-o") && strcmp(a, "--output"))
		return 0;
	if (*i + 1 >= argc || strcmp(argv[*i + 1], "json"))
		return cmd_usage_error(usage, "%s takes 'json'", a);
	(*i)++;
	*json = 1;
	return 1;
}
