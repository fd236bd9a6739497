/*
 * cmd: one function per command. Each gets argv starting at the command
 * name, parses its own flags, and returns the process exit status:
 * 0 success, 1 runtime failure, 2 usage or config error, 3 interrupted.
 */
#ifndef STRATA_CMD_CMD_H
#define STRATA_CMD_CMD_H

#include <stdio.h>

int cmd_init(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_status(int argc, char **argv);

/* True when argv holds -h or --help; prints usage to stdout then. */
int cmd_wants_help(int argc, char **argv, const char *usage);
/* Print "usage: ..." to stderr and return 2. */
int cmd_usage_error(const char *usage, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * For an argument no option took: an unknown "-x" or a second positional
 * is a usage error (returns 2 after printing it); else *env takes it.
 */
int cmd_positional(const char **env, const char *arg, const char *usage);
/*
 * "-o json" (also "-ojson", "--output=json") at argv[*i]: sets *json and
 * returns 1 (advancing *i past a separate value); 0 when argv[*i] is not
 * an output flag; 2 after printing a usage error.
 */
int cmd_output_flag(int argc, char **argv, int *i, int *json, const char *usage);
/* Folder holding the examples: $STRATA_EXAMPLES, next to the binary, or installed. */
char *cmd_examples_dir(void);
/* Resolve an ENV argument: a path with '/' as given, else environments/ENV. */
char *cmd_env_dir(const char *env);

#endif
