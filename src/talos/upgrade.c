#include "talos/upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libfyaml.h>

#include "config/validate.h"
#include "talos/factory.h"
#include "talos/gen.h"
#include "talos/tyaml.h"
#include "util/buf.h"
#include "util/isolate.h"

static int
num(const char **p, int *out)
{
	long v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 6) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (!digits || (**p >= '0' && **p <= '9'))
		return -1;
	*out = (int)v;
	return 0;
}

int
semver_parse(struct semver *v, const char *s)
{
	const char *p = s;

	memset(v, 0, sizeof(*v));
	if (!s)
		return -1;
	if (*p == 'v')
		p++;
	if (num(&p, &v->major) < 0 || *p++ != '.' || num(&p, &v->minor) < 0 ||
	    *p++ != '.' || num(&p, &v->patch) < 0)
		return -1;
	return *p == 0 || *p == '-' || *p == '+' ? 0 : -1;
}

int
semver_cmp(const struct semver *a, const struct semver *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return 0;
}

/*
 * Talos's upgrade docs: a minor upgrade starts from the latest patch of the
 * current minor (FACTS-day2 4a "Upgrade path"). The latest strata knows is
 * its default for that minor (config_talos_compat); -1 (why) when from is
 * older.
 */
static int
talos_latest_patch_first(const struct semver *a, const struct semver *b,
			 const char *from, const char *to, char *why,
			 size_t whylen)
{
	const struct talos_compat *tc = config_talos_compat(a->minor);
	struct semver latest;

	if (b->minor != a->minor + 1 || !tc ||
	    semver_parse(&latest, tc->default_version) < 0 ||
	    semver_cmp(a, &latest) >= 0)
		return 0;
	snprintf(why, whylen, "Talos %s -> %s leaves v%d.%d before its latest "
		 "patch: a minor upgrade is supported from the latest patch of "
		 "the current minor; set talos.version to %s, apply, then %s",
		 from, to, a->major, a->minor, tc->default_version, to);
	return -1;
}

int
upgrade_path(const char *what, const char *from, const char *to, char *why,
	     size_t whylen)
{
	struct semver a, b;
	int c;

	if (semver_parse(&a, from) < 0 || semver_parse(&b, to) < 0) {
		snprintf(why, whylen, "%s version '%s' -> '%s': not a version "
			 "(want vMAJOR.MINOR.PATCH)", what, from ? from : "?",
			 to ? to : "?");
		return -1;
	}
	c = semver_cmp(&a, &b);
	if (c == 0)
		return 0;
	if (c > 0) {
		snprintf(why, whylen, "%s %s -> %s is a downgrade, which strata "
			 "does not roll; set the version back to %s", what, from,
			 to, from);
		return -1;
	}
	if (a.major != b.major || b.minor > a.minor + 1) {
		snprintf(why, whylen, "%s %s -> %s skips a minor version: only "
			 "adjacent minors are a supported upgrade path; go to "
			 "%d.%d first (its latest patch), apply, then on",
			 what, from, to, a.major, a.minor + 1);
		return -1;
	}
	if (!strcmp(what, "Talos") &&
	    talos_latest_patch_first(&a, &b, from, to, why, whylen) < 0)
		return -1;
	return 1;
}

char *
upgrade_installer(const struct config *cfg, struct err *err)
{
	char id[65];

	if (cfg->talos.installer_image)
		return xstrdup(cfg->talos.installer_image);
	if (talos_schematic_for(id, cfg, err) < 0)
		return NULL;
	return talos_factory_installer(id, cfg->talos.version, "metal");
}

static const struct {
	const char *name, *section, *key, *field;
} k8s_steps[K8S_NSTEPS] = {
	{ "kube-apiserver", "cluster", "apiServer", "cluster.apiServer.image" },
	{ "kube-controller-manager", "cluster", "controllerManager",
	  "cluster.controllerManager.image" },
	{ "kube-scheduler", "cluster", "scheduler", "cluster.scheduler.image" },
	{ "kube-proxy", "cluster", "proxy", "cluster.proxy.image" },
	{ "kubelet", "machine", "kubelet", "machine.kubelet.image" },
};

const char *
k8s_step_name(enum k8s_step s)
{
	return s < K8S_NSTEPS ? k8s_steps[s].name : "?";
}

const char *
k8s_step_field(enum k8s_step s)
{
	return s < K8S_NSTEPS ? k8s_steps[s].field : "?";
}

/* The map holding `image` for step s in a document, or NULL. */
static struct fy_node *
step_map(struct fy_document *doc, enum k8s_step s)
{
	struct fy_node *root = fy_document_root(doc);

	if (!root || !fy_node_is_mapping(root))
		return NULL;
	root = y_get(root, k8s_steps[s].section);
	if (!root || !fy_node_is_mapping(root))
		return NULL;
	root = y_get(root, k8s_steps[s].key);
	return root && fy_node_is_mapping(root) ? root : NULL;
}

/*
 * A node's machine config holds the cluster's CA keys and tokens, and
 * libfyaml frees its copies of what it parses and emits unwiped
 * (util/isolate.h): every parse and emit below runs in a fresh process
 * (isolate_spawn; the phases call these on their node threads), except
 * upgrade_images_here, which is for a process that is itself isolated.
 */

/* One parse: every step's image and machine.install.image. */
static int
images_parse(struct k8s_images *im, char **install, const char *text,
	     size_t len, struct err *err)
{
	struct ydocs d = YDOCS_INIT;
	size_t i;
	int s;

	memset(im, 0, sizeof(*im));
	*install = NULL;
	if (ydocs_parse(&d, text, len, err) < 0)
		return -1;
	for (i = 0; i < d.n; i++) {
		struct fy_node *root = fy_document_root(d.v[i]), *m;

		for (s = 0; s < K8S_NSTEPS; s++)
			if (!im->v[s] && (m = step_map(d.v[i], (enum k8s_step)s)))
				im->v[s] = y_get_str(m, "image");
		if (!*install && root && fy_node_is_mapping(root) &&
		    (m = y_get(root, "machine")) && fy_node_is_mapping(m) &&
		    (m = y_get(m, "install")) && fy_node_is_mapping(m))
			*install = y_get_str(m, "image");
	}
	ydocs_release(&d);
	return 0;
}

void
upgrade_images_here(struct k8s_images *im, char **install, const char *text,
		    size_t len)
{
	struct err e = ERR_INIT;

	if (images_parse(im, install, text, len, &e) < 0) {
		k8s_images_free(im);
		*install = NULL;
	}
}

static int
images_child(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *t = ctx;
	struct k8s_images im;
	char *install;
	int s;

	if (images_parse(&im, &install, t->ptr, t->len, err) < 0)
		return -1;
	for (s = 0; s < K8S_NSTEPS; s++)
		isolate_put_str(out, im.v[s]);
	isolate_put_str(out, install);
	k8s_images_free(&im);
	free(install);
	return 0;
}
ISOLATE_OP(images_child);

/* The images and install image of config text; all NULL when it does not
 * parse (or the child fails), as a config without them. */
static void
images_isolated(struct k8s_images *im, char **install, const char *text,
		size_t len)
{
	struct buf res = BUF_INIT;
	struct err e = ERR_INIT;
	struct isolate_reader rd;
	char *inst = NULL;
	int s;

	memset(im, 0, sizeof(*im));
	if (isolate_spawn(images_child, text, len, &res, &e) == 0) {
		isolate_reader_init(&rd, &res);
		for (s = 0; s < K8S_NSTEPS; s++)
			im->v[s] = isolate_get_str(&rd);
		inst = isolate_get_str(&rd);
		if (rd.bad) {
			k8s_images_free(im);
			free(inst);
			inst = NULL;
		}
	}
	buf_release(&res);
	if (install)
		*install = inst;
	else
		free(inst);
}

/*
 * The one rewrite: the image of every step from `first` on set anew.
 * Per step k, match[k] and value[k]: with match, an image ending in match
 * gets that end replaced by value (others are left alone); without, the
 * image becomes value (when value is given). Input and output are packed
 * for the child: the config, first, then the pairs.
 */
static int
rewrite_child(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *in = ctx;
	struct isolate_reader rd;
	struct buf text = BUF_INIT_SECRET;
	char *match[K8S_NSTEPS] = { 0 }, *value[K8S_NSTEPS] = { 0 };
	struct ydocs d = YDOCS_INIT;
	size_t i;
	int r = 0, k, first;

	isolate_reader_init(&rd, in);
	isolate_get_mem(&rd, &text);
	first = (int)isolate_get_long(&rd);
	for (k = 0; k < K8S_NSTEPS; k++) {
		match[k] = isolate_get_str(&rd);
		value[k] = isolate_get_str(&rd);
	}
	if (rd.bad || first < 0) {
		r = err_set(err, ERR_FAIL, "malformed image rewrite request");
		goto out;
	}
	if ((r = ydocs_parse(&d, text.ptr, text.len, err)) < 0) {
		r = err_wrap(err, "the node's machine config");
		goto out;
	}
	for (i = 0; i < d.n && r == 0; i++) {
		for (k = first; k < K8S_NSTEPS && r == 0; k++) {
			struct fy_node *m = step_map(d.v[i], (enum k8s_step)k);
			struct fy_node_pair *p;
			char *img, *set = NULL;
			size_t il, ml;

			if (!m || !value[k] ||
			    !(p = fy_node_mapping_lookup_pair_by_string(m, "image", FY_NT)))
				continue;
			if (match[k]) {
				if (!(img = y_get_str(m, "image")))
					continue;
				il = strlen(img);
				ml = strlen(match[k]);
				if (il > ml && !strcmp(img + il - ml, match[k]))
					set = xasprintf("%.*s%s", (int)(il - ml), img,
							value[k]);
				free(img);
				if (!set)
					continue;
			}
			if (fy_node_pair_set_value(p, y_str(d.v[i], set ? set : value[k])) != 0)
				r = err_set(err, ERR_FAIL, "cannot set %s in the "
					    "machine config", k8s_steps[k].field);
			free(set);
		}
	}
	if (r == 0)
		r = ydocs_emit(out, &d, err);
out:
	ydocs_release(&d);
	buf_release_secret(&text);
	for (k = 0; k < K8S_NSTEPS; k++) {
		free(match[k]);
		free(value[k]);
	}
	return r;
}
ISOLATE_OP(rewrite_child);

static int
rewrite_isolated(const char *text, size_t len, int first,
		 char *const match[K8S_NSTEPS], char *const value[K8S_NSTEPS],
		 struct buf *out, struct err *err)
{
	struct buf in = BUF_INIT_SECRET;
	int r, k;

	isolate_put_mem(&in, text, len);
	isolate_put_long(&in, first);
	for (k = 0; k < K8S_NSTEPS; k++) {
		isolate_put_str(&in, match[k]);
		isolate_put_str(&in, value[k]);
	}
	r = isolate_spawn(rewrite_child, in.ptr, in.len, out, err);
	buf_release_secret(&in);
	return r;
}

/* Steps from first on: an image tagged v<to_ver> goes back to v<from_ver>. */
static int
rewrite_from(const char *text, size_t len, int first, const char *from_ver,
	     const char *to_ver, struct buf *out, struct err *err)
{
	char *match[K8S_NSTEPS] = { 0 }, *value[K8S_NSTEPS] = { 0 };
	int r, k;

	for (k = first; k < K8S_NSTEPS; k++) {
		match[k] = xasprintf(":v%s", to_ver);
		value[k] = xasprintf(":v%s", from_ver);
	}
	r = rewrite_isolated(text, len, first, match, value, out, err);
	for (k = 0; k < K8S_NSTEPS; k++) {
		free(match[k]);
		free(value[k]);
	}
	return r;
}

int
upgrade_k8s_config(const char *text, size_t len, enum k8s_step s,
		   const char *from_ver, const char *to_ver, struct buf *out,
		   struct err *err)
{
	return rewrite_from(text, len, (int)s + 1, from_ver, to_ver, out, err);
}

int
upgrade_k8s_config_join(const char *text, size_t len, const char *from_ver,
			const char *to_ver, struct buf *out, struct err *err)
{
	return rewrite_from(text, len, 0, from_ver, to_ver, out, err);
}

char *
upgrade_k8s_image(const char *text, size_t len, enum k8s_step s)
{
	struct k8s_images im;
	char *img;

	images_isolated(&im, NULL, text, len);
	img = im.v[s];
	im.v[s] = NULL;
	k8s_images_free(&im);
	return img;
}

void
k8s_images_of(struct k8s_images *im, const char *text, size_t len)
{
	images_isolated(im, NULL, text, len);
}

char *
k8s_images_format(const struct k8s_images *im)
{
	struct buf b = BUF_INIT;
	char *out;
	int s;

	for (s = 0; s < K8S_NSTEPS; s++)
		if (im->v[s])
			buf_addf(&b, "%s%s=%s", b.len ? " " : "", k8s_steps[s].name,
				 im->v[s]);
	out = xstrdup(b.ptr ? b.ptr : "");
	buf_release(&b);
	return out;
}

void
k8s_images_parse(struct k8s_images *im, const char *str)
{
	const char *p = str;
	int s;

	memset(im, 0, sizeof(*im));
	while (p && *p) {
		const char *sp = strchr(p, ' '), *eq = strchr(p, '=');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);

		if (eq && eq < p + n) {
			for (s = 0; s < K8S_NSTEPS; s++)
				if (strlen(k8s_steps[s].name) == (size_t)(eq - p) &&
				    !strncmp(p, k8s_steps[s].name, (size_t)(eq - p))) {
					free(im->v[s]);
					im->v[s] = xasprintf("%.*s", (int)(p + n - eq - 1),
							     eq + 1);
				}
		}
		p = sp ? sp + 1 : NULL;
	}
}

void
k8s_images_default(struct k8s_images *im, const char *version, bool cp)
{
	static const char *const repo[K8S_NSTEPS] = {
		"registry.k8s.io/kube-apiserver",
		"registry.k8s.io/kube-controller-manager",
		"registry.k8s.io/kube-scheduler", "registry.k8s.io/kube-proxy",
		"ghcr.io/siderolabs/kubelet",
	};
	int s;

	memset(im, 0, sizeof(*im));
	for (s = 0; version && s < K8S_NSTEPS; s++)
		if (cp || s == K8S_KUBELET)
			im->v[s] = xasprintf("%s:v%s", repo[s], version);
}

void
k8s_images_free(struct k8s_images *im)
{
	int s;

	for (s = 0; s < K8S_NSTEPS; s++) {
		free(im->v[s]);
		im->v[s] = NULL;
	}
}

int
upgrade_k8s_config_old(const char *text, size_t len, enum k8s_step s,
		       const struct k8s_images *old, struct buf *out,
		       struct err *err)
{
	char *const none[K8S_NSTEPS] = { 0 };

	return rewrite_isolated(text, len, (int)s + 1, none, old->v, out, err);
}

int
upgrade_k8s_config_before(const char *text, size_t len, enum k8s_step s,
			  const char *from_ver, const char *to_ver,
			  struct buf *out, struct err *err)
{
	return rewrite_from(text, len, (int)s, from_ver, to_ver, out, err);
}

int
upgrade_k8s_config_old_before(const char *text, size_t len, enum k8s_step s,
			      const struct k8s_images *old, struct buf *out,
			      struct err *err)
{
	char *const none[K8S_NSTEPS] = { 0 };

	return rewrite_isolated(text, len, (int)s, none, old->v, out, err);
}

char *
upgrade_install_image(const char *text, size_t len)
{
	struct k8s_images im;
	char *install;

	images_isolated(&im, &install, text, len);
	k8s_images_free(&im);
	return install;
}
