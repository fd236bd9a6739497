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

static int
rewrite_from(const char *text, size_t len, int first, const char *from_ver,
	     const char *to_ver, struct buf *out, struct err *err);

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

static int
rewrite_from(const char *text, size_t len, int first, const char *from_ver,
	     const char *to_ver, struct buf *out, struct err *err)
{
	struct ydocs d = YDOCS_INIT;
	char want[64];
	size_t i;
	int r, k;

	if ((r = ydocs_parse(&d, text, len, err)) < 0)
		return err_wrap(err, "the node's machine config");
	snprintf(want, sizeof(want), ":v%s", to_ver);
	for (i = 0; i < d.n; i++) {
		for (k = first; k < K8S_NSTEPS; k++) {
			struct fy_node *m = step_map(d.v[i], (enum k8s_step)k);
			struct fy_node_pair *p;
			char *img, *old;
			size_t il, wl = strlen(want);

			if (!m || !(img = y_get_str(m, "image")))
				continue;
			il = strlen(img);
			if (il > wl && !strcmp(img + il - wl, want)) {
				old = xasprintf("%.*s:v%s", (int)(il - wl), img, from_ver);
				p = fy_node_mapping_lookup_pair_by_string(m, "image", FY_NT);
				if (!p || fy_node_pair_set_value(p, y_str(d.v[i], old)) != 0) {
					free(old);
					free(img);
					ydocs_release(&d);
					return err_set(err, ERR_FAIL, "cannot set %s in the "
						       "machine config", k8s_steps[k].field);
				}
				free(old);
			}
			free(img);
		}
	}
	r = ydocs_emit(out, &d, err);
	ydocs_release(&d);
	return r;
}

char *
upgrade_k8s_image(const char *text, size_t len, enum k8s_step s)
{
	struct ydocs d = YDOCS_INIT;
	struct err e = ERR_INIT;
	char *img = NULL;
	size_t i;

	if (ydocs_parse(&d, text, len, &e) < 0)
		return NULL;
	for (i = 0; i < d.n && !img; i++) {
		struct fy_node *m = step_map(d.v[i], s);

		if (m)
			img = y_get_str(m, "image");
	}
	ydocs_release(&d);
	return img;
}

void
k8s_images_of(struct k8s_images *im, const char *text, size_t len)
{
	int s;

	for (s = 0; s < K8S_NSTEPS; s++)
		im->v[s] = upgrade_k8s_image(text, len, (enum k8s_step)s);
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
	struct ydocs d = YDOCS_INIT;
	size_t i;
	int r, k;

	if ((r = ydocs_parse(&d, text, len, err)) < 0)
		return err_wrap(err, "the node's machine config");
	for (i = 0; i < d.n; i++) {
		for (k = (int)s + 1; k < K8S_NSTEPS; k++) {
			struct fy_node *m = step_map(d.v[i], (enum k8s_step)k);
			struct fy_node_pair *p;

			if (!m || !old->v[k])
				continue;
			p = fy_node_mapping_lookup_pair_by_string(m, "image", FY_NT);
			if (!p)
				continue;
			if (fy_node_pair_set_value(p, y_str(d.v[i], old->v[k])) != 0) {
				ydocs_release(&d);
				return err_set(err, ERR_FAIL, "cannot set %s in the "
					       "machine config", k8s_steps[k].field);
			}
		}
	}
	r = ydocs_emit(out, &d, err);
	ydocs_release(&d);
	return r;
}

char *
upgrade_install_image(const char *text, size_t len)
{
	struct ydocs d = YDOCS_INIT;
	struct err e = ERR_INIT;
	char *img = NULL;
	size_t i;

	if (ydocs_parse(&d, text, len, &e) < 0)
		return NULL;
	for (i = 0; i < d.n && !img; i++) {
		struct fy_node *root = fy_document_root(d.v[i]), *m;

		if (!root || !fy_node_is_mapping(root) ||
		    !(m = y_get(root, "machine")) || !fy_node_is_mapping(m) ||
		    !(m = y_get(m, "install")) || !fy_node_is_mapping(m))
			continue;
		img = y_get_str(m, "image");
	}
	ydocs_release(&d);
	return img;
}
