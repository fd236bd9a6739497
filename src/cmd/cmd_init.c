#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cmd/cmd.h"
#include "config/config.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/out.h"


static const char gitignore[] =
	"# strata environment folder: it holds cluster secrets. Never commit it.\n"
	"*\n";

static int
valid_name(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (i = 0; i < n; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]) &&
		    s[i] != '-')
			return 0;
	return 1;
}

/* Replace the top-level "name:" line with the new name. */
static void
rename_config(struct buf *text, const char *name)
{
	struct buf out = BUF_INIT;
	const char *p = text->ptr;
	int done = 0;

	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p + 1) : strlen(p);

		if (!done && !strncmp(p, "name:", 5)) {
			buf_addf(&out, "name: %s\n", name);
			done = 1;
		} else {
			buf_add(&out, p, len);
		}
		p += len;
	}
	buf_release(text);
	*text = out;
}

static int
copy_tree(const char *src, const char *dst, const char *name, int depth,
	  struct err *err)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > 4)
		return 0;
	if ((r = fs_mkdir_p(dst, FS_MODE_DIR_PRIVATE, err)) < 0)
		return r;
	if (!(d = opendir(src)))
		return err_sys(err, errno, "cannot open '%s'", src);
	while (r == 0 && (de = readdir(d))) {
		char *s, *t;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		s = fs_join(src, de->d_name);
		t = fs_join(dst, de->d_name);
		if (stat(s, &st) < 0) {
			r = err_sys(err, errno, "cannot stat '%s'", s);
		} else if (S_ISDIR(st.st_mode)) {
			r = copy_tree(s, t, name, depth + 1, err);
		} else if (S_ISREG(st.st_mode)) {
			struct buf b = BUF_INIT;

			r = fs_read_file(&b, s, 1 << 20, err);
			if (r == 0 && depth == 0 && !strcmp(de->d_name, "config.yml"))
				rename_config(&b, name);
			if (r == 0)
				r = fs_write_atomic(t, b.ptr, b.len, 0600, err);
			buf_release(&b);
		}
		free(s);
		free(t);
	}
	closedir(d);
	return r;
}

/* The example folders (those with a config.yml), comma-separated. */
static char *
list_examples(const char *examples)
{
	struct buf b = BUF_INIT;
	struct dirent **v = NULL;
	int n, i;

	n = scandir(examples, &v, NULL, alphasort);
	for (i = 0; i < n; i++) {
		char *cfg = xasprintf("%s/%s/config.yml", examples, v[i]->d_name);

		if (v[i]->d_name[0] != '.' && fs_exists(cfg))
			buf_addf(&b, "%s%s", b.len ? ", " : "", v[i]->d_name);
		free(cfg);
		free(v[i]);
	}
	free(v);
	if (!b.len)
		buf_adds(&b, "none");
	return buf_detach(&b, NULL);
}

/* The platform an example folder's config.yml names, or NULL. */
static const char *
example_platform(const char *src)
{
	struct config *cfg = NULL;
	struct diag diag;
	const char *p = NULL;

	diag_init(&diag, "config.yml");
	if (config_load_env_opts(&cfg, src, &diag, CONFIG_OFFLINE) == 0 && cfg &&
	    cfg->platform != PLATFORM_UNSET)
		p = platform_name(cfg->platform);
	config_free(cfg);
	diag_release(&diag);
	return p;
}

int
cmd_init(int argc, char **argv)
{
	struct err err = ERR_INIT;
	const char *env = NULL, *platform = NULL, *from = NULL;
	char *dir = NULL, *examples = NULL, *src = NULL, *cfgpath = NULL;
	char *name, *gi = NULL;
	int i, r, rc = 1;

	if (cmd_wants_help(argc, argv, "init"))
		return 0;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--platform") || !strcmp(argv[i], "-p")) {
			if (++i >= argc)
				return cmd_usage_error("init", "--platform needs a value");
			platform = argv[i];
		} else if (!strncmp(argv[i], "--platform=", 11)) {
			platform = argv[i] + 11;
		} else if (!strcmp(argv[i], "--from")) {
			if (++i >= argc)
				return cmd_usage_error("init", "--from needs a value");
			from = argv[i];
		} else if ((r = cmd_positional(&env, argv[i], "init")) != 0) {
			return r;
		}
	}
	if (!env)
		return cmd_usage_error("init", "missing ENV");
	if (!platform && !from)
		return cmd_usage_error("init", "missing --platform (proxmox or vps)");
	if (platform && strcmp(platform, "proxmox") && strcmp(platform, "vps"))
		return cmd_usage_error("init",
				       "--platform must be proxmox or vps, not '%s'",
				       platform);
	if (from && (strchr(from, '/') || from[0] == '.'))
		return cmd_usage_error("init", "--from takes an example name, not a path");

	dir = cmd_env_dir_new(env);
	name = strrchr(dir, '/') ? strrchr(dir, '/') + 1 : dir;
	if (!valid_name(name)) {
		out_error("'%s' is not a valid environment name (lowercase "
			  "letters, digits and '-', at most 63)", name);
		rc = 2;
		goto out;
	}
	examples = cmd_examples_dir();
	src = from ? fs_join(examples, from)
		   : xasprintf("%s/%s-example", examples, platform);
	if (!fs_is_dir(src)) {
		char *list = list_examples(examples);

		out_error("example '%s' not found in %s; the examples are: %s "
			  "(STRATA_EXAMPLES names another folder)",
			  from ? from : strrchr(src, '/') + 1, examples, list);
		free(list);
		rc = 2;
		goto out;
	}
	if (from && platform) {
		const char *has = example_platform(src);

		if (has && strcmp(has, platform)) {
			out_error("example '%s' is a %s environment, not %s; drop "
				  "--platform or pick a %s example", from, has,
				  platform, platform);
			rc = 2;
			goto out;
		}
	}
	cfgpath = fs_join(dir, "config.yml");
	if (fs_exists(cfgpath)) {
		out_error("'%s' already exists; init never overwrites an "
			  "environment", cfgpath);
		goto out;
	}
	/* Create the folder, then write everything relative to it. */
	if ((r = fs_mkdir_p(dir, FS_MODE_DIR_PRIVATE, &err)) < 0 ||
	    (r = fs_root_open(dir, true, &err)) < 0 ||
	    (r = copy_tree(src, dir, name, 0, &err)) < 0)
		goto fail;
	gi = fs_join(dir, ".gitignore");
	if (fs_write_atomic(gi, gitignore, sizeof(gitignore) - 1,
			    FS_MODE_PUBLIC, &err) < 0)
		goto fail;
	printf("created %s from %s\n", dir, src);
	printf("next: edit %s, then run 'strata validate %s'\n", cfgpath, env);
	rc = 0;
	goto out;
fail:
	out_error("init '%s': %s", dir, err.msg);
out:
	fs_root_close();
	free(gi);
	free(cfgpath);
	free(src);
	free(examples);
	free(dir);
	return rc;
}
