/*
 * strata: one YAML file per environment -> a running homelab platform.
 * main only dispatches; each command lives in src/cmd/cmd_<name>.c and
 * its help text in src/cmd/help.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/memscan.h"
#include "util/out.h"

static int
run(const char *name, int argc, char **argv)
{
	const struct cmd_help *h = cmd_help_find(name);

	if (!h) {
		out_error("unknown command '%s'; see 'strata --help'", name);
		return 2;
	}
	return h->fn(argc, argv);
}

int
main(int argc, char **argv)
{
	signal(SIGPIPE, SIG_IGN);
	out_init();
	if (argc < 2) {
		cmd_main_usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc > 2 && !strcmp(argv[1], "help")) {
			char *sub[] = { argv[2], "--help", NULL };

			return run(argv[2], 2, sub);
		}
		cmd_main_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("strata %s\n", STRATA_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "--man")) {
		/* the man page, from the help text (make man writes strata.1) */
		cmd_man(stdout);
		return 0;
	}
	if (argv[1][0] == '-') {
		out_error("unknown option '%s'; see 'strata --help'", argv[1]);
		return 2;
	}
	return memscan_at_exit(run(argv[1], argc - 1, argv + 1));
}
