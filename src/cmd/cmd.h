/*
 * cmd: one function per command. Each gets argv starting at the command
 * name, parses its own flags, and returns the process exit status
 * (the table is in help.c and README.md):
 * 0 success, 1 runtime failure, 2 usage or config error, 3 interrupted.
 */
#ifndef STRATA_CMD_CMD_H
#define STRATA_CMD_CMD_H

#include <stdio.h>

#ifndef STRATA_VERSION
#define STRATA_VERSION "0.1.0"
#endif

int cmd_init(int argc, char **argv);
int cmd_validate(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_ansible(int argc, char **argv);
int cmd_template(int argc, char **argv);
int cmd_plan(int argc, char **argv);
int cmd_apply(int argc, char **argv);
int cmd_destroy(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_history(int argc, char **argv);
int cmd_etcd(int argc, char **argv);
/* apply's phases with etcd recovered from snapshot (strata restore --etcd);
 * argv as apply takes it. */
struct etcd_recovery;
int cmd_apply_recover(int argc, char **argv,
		      const struct etcd_recovery *snapshot);
int cmd_preflight(int argc, char **argv);
int cmd_hypervisor(int argc, char **argv);

/* A command's help, in fixed parts (help.c); the man page is made of them. */
struct cmd_help {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;      /* one line in 'strata --help' */
	const char *synopsis;     /* after "usage: strata NAME " */
	const char *description;
	const char *env_forms;
	const char *options;
	const char *exits;
	const char *example;
};
const struct cmd_help *cmd_help_table(size_t *n);
const struct cmd_help *cmd_help_find(const char *name);
void cmd_help_print(const struct cmd_help *h, FILE *fp);
/* 'strata --help': the commands, ENV forms, the exit-status table. */
void cmd_main_usage(FILE *fp);
/* The man page strata.1 (roff) from the same text. */
void cmd_man(FILE *fp);

/* True when argv holds -h or --help; prints cmd's help to stdout then. */
int cmd_wants_help(int argc, char **argv, const char *cmd);
/*
 * A usage error of command cmd, on one line: "error: MESSAGE; see
 * 'strata CMD --help'" on stderr. Returns 2.
 */
int cmd_usage_error(const char *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * For an argument no option took: an unknown "-x" or a second positional
 * is a usage error (returns 2 after printing it); else *env takes it.
 */
int cmd_positional(const char **env, const char *arg, const char *cmd);
/*
 * "-o json" (also "-ojson", "--output=json") at argv[*i]: sets *json and
 * returns 1 (advancing *i past a separate value); 0 when argv[*i] is not
 * an output flag; 2 after printing a usage error.
 */
int cmd_output_flag(int argc, char **argv, int *i, int *json, const char *cmd);
/* Folder holding the examples: $STRATA_EXAMPLES, next to the binary, or installed. */
char *cmd_examples_dir(void);
/*
 * Resolve an ENV argument (the forms in help.c's ENV_FORMS):
 *   a path ending in "/config.yml" (or naming any file): its folder;
 *   a path with '/', ".", "..": as given, without a trailing '/';
 *   NAME: "NAME" when ./NAME/config.yml exists, else "environments/NAME".
 * Returned normalised ("a/./b/" -> "a/b"); the caller frees.
 */
char *cmd_env_dir(const char *env);
/* Like cmd_env_dir for a folder that does not exist yet (init): a path
 * as given, a NAME under environments/. */
char *cmd_env_dir_new(const char *env);
/* "a/b/../c/./d/" -> "a/c/d" lexically (symlinks are not resolved). */
char *cmd_path_normalise(const char *path);

#endif
