/*
 * strata: one YAML file per environment -> a running homelab platform.
 * main only dispatches; each command lives in src/cmd/cmd_<name>.c.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "util/out.h"

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.1.0"
#endif

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "init", cmd_init, "create an environment folder from an example" },
	{ "validate", cmd_validate, "check config.yml; every error as FILE:LINE:COL" },
	{ "gen", cmd_gen, "write secrets (once), Talos machine configs and talosconfig; offline" },
	{ "plan", cmd_plan, "show what apply would change in Proxmox (-o json)" },
	{ "apply", cmd_apply, "create, update, delete and start VMs; resumable" },
	{ "destroy", cmd_destroy, "hard-stop and delete every VM this env owns" },
	{ "status", cmd_status, "VMs as Proxmox sees them next to the config (-o json)" },
};

static void
usage(FILE *fp)
{
	size_t i;

	fprintf(fp,
		"usage: strata [--version] [--help] COMMAND [ARGS]\n"
		"\n"
		"strata turns one config.yml per environment into a running\n"
		"Talos Kubernetes platform. ENV is a folder, or a name under\n"
		"./environments.\n"
		"\n"
		"commands:\n");
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(fp, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(fp,
		"\n"
		"'strata COMMAND --help' describes a command.\n"
		"Exit status: 0 success, 1 failure, 2 usage or config error.\n"
		"NO_COLOR turns colour off.\n");
}

int
main(int argc, char **argv)
{
	size_t i;

	signal(SIGPIPE, SIG_IGN);
	out_init();
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
	    !strcmp(argv[1], "help")) {
		if (argc > 2 && strcmp(argv[1], "help") == 0) {
			char *sub[] = { argv[2], "--help", NULL };

			for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
				if (!strcmp(commands[i].name, argv[2]))
					return commands[i].fn(2, sub);
		}
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
		printf("strata %s\n", STRATA_VERSION);
		return 0;
	}
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(commands[i].name, argv[1]))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "error: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return 2;
}
