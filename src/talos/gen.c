#include "talos/gen.h"
#include "talos/firewall.h"

#include <ctype.h>
#include <errno.h>
#include <libfyaml.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "talos/factory.h"
#include "talos/machineconfig.h"
#include "talos/patch.h"
#include "talos/secrets.h"
#include "talos/talosconfig.h"
#include "talos/upgrade.h"
#include "state/state.h"
#include "talos/tyaml.h"
#include "util/fs.h"
#include "util/isolate.h"
#include "util/net.h"
#include "util/out.h"
#include "util/yaml.h"

#define FILE_MAX (4 << 20)

void
gen_result_release(struct gen_result *res)
{
	free(res->iso_url);
	free(res->installer_image);
	buf_release(&res->manifest);
	buf_release(&res->kept);
	free(res->changed);
	free(res->images);
	memset(res, 0, sizeof(*res));
}

#define MANIFEST ".generated.sha256"

static void
sha256_hex(char out[65], const void *data, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;

	/* Fails only without memory (or a broken OpenSSL): die, as
	 * xmalloc does, rather than use an unset digest. */
	if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1)
		abort();
	for (i = 0; i < mdlen && i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	out[64] = '\0';
}

/* Every write is recorded in res->manifest ("HASH  REL\n" lines). */
static int
write_file(struct gen_result *res, const char *dir, const char *rel,
	   const struct buf *b, mode_t mode, struct err *err)
{
	char *path = fs_join(dir, rel);
	bool changed = false;
	char hex[65];
	int r;

	if (res->check_only) {
		/* Compare only: apply asks before anything is written. */
		struct buf old = BUF_INIT;
		struct err e = ERR_INIT;

		changed = fs_read_file(&old, path, 64 << 20, &e) < 0 ||
			  old.len != b->len || memcmp(old.ptr, b->ptr, b->len);
		buf_release_secret(&old);
		r = 0;
	} else {
		r = fs_write_if_changed(path, b->ptr, b->len, mode, &changed, err);
	}
	if (r < 0)
		r = err_wrap(err, "write '%s'", path);
	res->files_total++;
	if (changed) {
		size_t old = res->changed ? strlen(res->changed) : 0;

		res->files_changed++;
		res->changed = xrealloc(res->changed, old + strlen(rel) + 2);
		snprintf(res->changed + old, strlen(rel) + 2, "%s\n", rel);
	}
	if (r == 0) {
		sha256_hex(hex, b->ptr, b->len);
		buf_addf(&res->manifest, "%s  %s\n", hex, rel);
	}
	free(path);
	return r;
}

/* Only per-node files are ever removed: nodes/NAME.yaml, patches/NAME.yaml. */
static bool
removable(const char *rel)
{
	const char *name;

	if (!strncmp(rel, "nodes/", 6))
		name = rel + 6;
	else if (!strncmp(rel, "patches/", 8))
		name = rel + 8;
	else
		return false;
	return *name && name[0] != '.' && !strchr(name, '/') &&
	       strlen(name) > 5 && !strcmp(name + strlen(name) - 5, ".yaml");
}

static bool
manifest_has(const struct buf *m, const char *rel)
{
	const char *p = m->ptr ? m->ptr : "";
	size_t n = strlen(rel);

	while ((p = strstr(p, rel))) {
		if (p >= m->ptr + 2 && p[-1] == ' ' && p[-2] == ' ' &&
		    (p[n] == '\n' || !p[n]))
			return true;
		p += n;
	}
	return false;
}

/*
 * Files the previous run recorded and this one did not write belong to
 * nodes that left the config. Each is removed when it still holds what gen
 * wrote; one changed since is kept and named. Without a previous record
 * (an env from before it existed) nothing is removed.
 */
static int
remove_stale(struct gen_result *res, const char *env_dir, struct err *err)
{
	struct buf old = BUF_INIT;
	struct err ignore = ERR_INIT;
	char *mpath = fs_join(env_dir, MANIFEST);
	char *line, *save = NULL;
	int r = 0;

	if (!fs_exists(mpath) ||
	    fs_read_file(&old, mpath, 4 << 20, &ignore) < 0)
		goto write;
	for (line = strtok_r(old.ptr, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct buf cur = BUF_INIT;
		const char *rel;
		char hex[65];
		char *path;

		if (strlen(line) < 67 || line[64] != ' ' || line[65] != ' ')
			continue;
		rel = line + 66;
		line[64] = '\0';
		if (!removable(rel) || manifest_has(&res->manifest, rel))
			continue;
		path = fs_join(env_dir, rel);
		if (fs_read_file(&cur, path, FILE_MAX, &ignore) == 0) {
			sha256_hex(hex, cur.ptr, cur.len);
			if (strcmp(hex, line)) {
				/* Warned about by talos_gen, outside
				 * the isolated step. */
				buf_addf(&res->kept, "%s\n", rel);
				res->files_kept++;
			} else if ((r = fs_remove(path, err)) < 0) {
				/* relative to the env folder, no link followed */
				r = err_wrap(err, "remove '%s'", rel);
			} else {
				res->files_removed++;
			}
		}
		buf_release_secret(&cur);
		free(path);
		if (r < 0)
			goto out;
	}
write:
	r = fs_write_if_changed(mpath, res->manifest.ptr ? res->manifest.ptr : "",
				res->manifest.len, FS_MODE_SECRET, NULL, err);
	if (r < 0)
		r = err_wrap(err, "write '%s'", mpath);
out:
	buf_release(&old);
	free(mpath);
	return r;
}

static void
fill_input(struct mc_input *in, const struct config *cfg,
	   const char *installer)
{
	const struct kubernetes_config *k = &cfg->kubernetes;

	memset(in, 0, sizeof(*in));
	in->cluster_name = k->cluster_name;
	in->endpoint = k->endpoint;
	in->k8s_version = k->version;
	in->contract_minor = cfg->talos.minor;
	in->install_disk = cfg->talos.install_disk ? cfg->talos.install_disk : "/dev/sda";
	in->install_image = installer;
	in->dns_domain = k->dns_domain;
	in->pod_subnet = k->pod_subnet;
	in->service_subnet = k->service_subnet;
	if (k->cni == CNI_CILIUM || k->cni == CNI_NONE)
		in->cni_name = "none";
	in->proxy_disabled = k->cni == CNI_CILIUM || !k->kube_proxy;
	in->allow_scheduling_on_controlplanes = k->allow_scheduling_on_controlplanes;
}

static struct fy_document *
new_doc(const char *kind, struct fy_node **root)
{
	struct fy_document *doc = yaml_new_document();

	if (!doc)
		abort();
	*root = y_map(doc);
	fy_document_set_root(doc, *root);
	if (kind) {
		y_puts(*root, "apiVersion", "v1alpha1");
		y_puts(*root, "kind", kind);
	}
	return doc;
}

/* The per-node patch, in the multi-document style of the v1.12 schema. */
static void
node_patch(struct ydocs *p, const struct config *cfg, const struct node *n,
	   const char *mac)
{
	struct fy_document *doc;
	struct fy_node *root, *m, *s, *item;
	char addr[64];

	doc = new_doc(NULL, &root);
	m = y_map(doc);
	s = y_map(doc);
	y_puts(s, "disk", n->install_disk ? n->install_disk
	       : cfg->talos.install_disk ? cfg->talos.install_disk : "/dev/sda");
	y_put(m, "install", s);
	y_put(root, "machine", m);
	ydocs_push(p, doc);

	doc = new_doc("HostnameConfig", &root);
	y_puts(root, "hostname", n->name);
	/* Quoted: a plain off reads as a boolean to YAML 1.1 readers. */
	item = fy_node_build_from_string(doc, "\"off\"", (size_t)-1);
	if (!item)
		abort();
	y_put(root, "auto", item);
	ydocs_push(p, doc);

	/* An alias names the node's NIC. The selector must match exactly
	 * one link: by its MAC where known (every Proxmox VM once created,
	 * a VPS whose config gives it), else the only physical link. */
	doc = new_doc("LinkAliasConfig", &root);
	y_puts(root, "name", "net0");
	s = y_map(doc);
	if (mac) {
		char sel[96];

		snprintf(sel, sizeof(sel), "glob(\"%s\", mac(link.hardware_addr))",
			 mac);
		y_puts(s, "match", sel);
	} else {
		y_puts(s, "match", "link.type == 1");
	}
	y_put(root, "selector", s);
	ydocs_push(p, doc);

	doc = new_doc("LinkConfig", &root);
	y_puts(root, "name", "net0");
	if (n->ip) {
		s = y_seq(doc);
		item = y_map(doc);
		snprintf(addr, sizeof(addr), "%s/%d", n->ip, cfg->network.prefix);
		y_puts(item, "address", addr);
		fy_node_sequence_append(s, item);
		y_put(root, "addresses", s);
	}
	if (cfg->network.gateway) {
		s = y_seq(doc);
		if (cfg->network.gateway_onlink) {
			/* Gateway outside the CIDR (VPS): a route to it on the
			 * link first (a destination without gateway). */
			char dst[64];

			snprintf(dst, sizeof(dst), "%s/32", cfg->network.gateway);
			item = y_map(doc);
			y_puts(item, "destination", dst);
			fy_node_sequence_append(s, item);
		}
		item = y_map(doc);
		y_puts(item, "gateway", cfg->network.gateway);
		fy_node_sequence_append(s, item);
		y_put(root, "routes", s);
	}
	ydocs_push(p, doc);

	if (n->role == ROLE_CONTROLPLANE && cfg->kubernetes.vip) {
		doc = new_doc("Layer2VIPConfig", &root);
		y_puts(root, "name", cfg->kubernetes.vip);
		y_puts(root, "link", "net0");
		ydocs_push(p, doc);
	}
	if (cfg->network.nameservers.n) {
		doc = new_doc("ResolverConfig", &root);
		s = y_seq(doc);
		for (size_t i = 0; i < cfg->network.nameservers.n; i++) {
			item = y_map(doc);
			y_puts(item, "address", cfg->network.nameservers.v[i]);
			fy_node_sequence_append(s, item);
		}
		y_put(root, "nameservers", s);
		ydocs_push(p, doc);
	}
	if (talos_firewall_wanted(cfg))
		talos_firewall_docs(p, cfg, n);
}

/*
 * The talos.patches of the config, each read and parsed when the first node
 * needs it and then applied to every node (applying leaves a patch as it
 * is).
 */
struct user_patch {
	bool parsed;
	struct ydocs docs;
};

static void
user_patches_release(struct user_patch *up, size_t n)
{
	for (size_t i = 0; up && i < n; i++)
		ydocs_release(&up[i].docs);
	free(up);
}

static int
user_patches(struct ydocs *cfgdocs, const struct config *cfg,
	     const char *env_dir, struct user_patch *up, struct err *err)
{
	for (size_t i = 0; i < cfg->talos.n_patches; i++) {
		const struct talos_patch *tp = &cfg->talos.patches[i];
		struct buf text = BUF_INIT;
		char *path = NULL;
		int r = 0;

		if (tp->file)
			path = tp->file[0] == '/' ? xstrdup(tp->file)
						  : fs_join(env_dir, tp->file);
		if (!up[i].parsed) {
			if (path)
				r = fs_read_file(&text, path, FILE_MAX, err);
			else
				buf_adds(&text, tp->inline_yaml ? tp->inline_yaml : "");
			if (r == 0)
				r = ydocs_parse(&up[i].docs, text.ptr, text.len, err);
			up[i].parsed = r == 0;
		}
		if (r == 0)
			r = talos_patch_apply(cfgdocs, &up[i].docs, err);
		if (r < 0) {
			if (path)
				r = err_wrap(err, "talos patch '%s'", path);
			else
				r = err_wrap(err, "talos patch %zu (config.yml:%d:%d)",
					     i + 1, tp->line, tp->col);
		}
		free(path);
		buf_release(&text);
		if (r < 0)
			return r;
	}
	return 0;
}

/* The images nodes/NODE.yaml carries, for the rolls (gen.h images). */
static void
gen_note_images(struct gen_result *res, const char *name, const struct buf *b)
{
	struct k8s_images im;
	struct buf l = BUF_INIT;
	char *inst;
	size_t old = res->images ? strlen(res->images) : 0;
	int s;

	/* gen runs in a child process (talos_gen): parse here */
	upgrade_images_here(&im, &inst, b->ptr, b->len);
	for (s = 0; s < K8S_NSTEPS; s++)
		if (im.v[s])
			buf_addf(&l, "%s %s %s\n", name, k8s_step_name((enum k8s_step)s),
				 im.v[s]);
	if (inst)
		buf_addf(&l, "%s install %s\n", name, inst);
	res->images = xrealloc(res->images, old + l.len + 1);
	memcpy(res->images + old, l.ptr, l.len);
	res->images[old + l.len] = '\0';
	free(inst);
	k8s_images_free(&im);
	buf_release(&l);
}

/*
 * nodes/NODE.yaml: a copy of its role's base documents (the same for every
 * node of the role, so built once) with the node patch and the config's
 * patches applied.
 */
static int
gen_node(struct gen_result *res, const struct config *cfg, const char *env_dir,
	 const struct node *n, const char *mac, const struct ydocs *role_base,
	 struct user_patch *up, struct err *err)
{
	struct ydocs base = YDOCS_INIT, patch = YDOCS_INIT;
	struct buf b = BUF_INIT_SECRET;
	char rel[300];
	int r;

	node_patch(&patch, cfg, n, mac);
	if ((r = ydocs_emit(&b, &patch, err)) < 0)
		goto out;
	snprintf(rel, sizeof(rel), "patches/%s.yaml", n->name);
	if ((r = write_file(res, env_dir, rel, &b, FS_MODE_PUBLIC, err)) < 0)
		goto out;
	ydocs_clone(&base, role_base);
	if ((r = talos_patch_apply(&base, &patch, err)) < 0 ||
	    (r = user_patches(&base, cfg, env_dir, up, err)) < 0)
		goto out;
	buf_release_secret(&b);
	if ((r = ydocs_emit(&b, &base, err)) < 0)
		goto out;
	snprintf(rel, sizeof(rel), "nodes/%s.yaml", n->name);
	r = write_file(res, env_dir, rel, &b, FS_MODE_SECRET, err);
	if (r == 0)
		gen_note_images(res, n->name, &b);
out:
	if (r < 0)
		r = err_wrap(err, "node '%s'", n->name);
	buf_release_secret(&b);
	ydocs_release(&base);
	ydocs_release(&patch);
	return r;
}

static int
gen_talosconfig(struct gen_result *res, const struct config *cfg,
		const char *env_dir, const struct talos_secrets *s,
		struct err *err)
{
	struct talosconfig_input in = { 0 };
	struct buf prev = BUF_INIT_SECRET, out = BUF_INIT_SECRET;
	const char **eps = xcalloc(cfg->n_nodes + 1, sizeof(char *));
	const char **nodes = xcalloc(cfg->n_nodes + 1, sizeof(char *));
	char *path = fs_join(env_dir, "talosconfig");
	bool reused;
	int r;

	for (size_t i = 0; i < cfg->n_nodes; i++) {
		if (!cfg->nodes[i].ip)
			continue;
		if (cfg->nodes[i].role == ROLE_CONTROLPLANE)
			eps[in.n_endpoints++] = cfg->nodes[i].ip;
		nodes[in.n_nodes++] = cfg->nodes[i].ip;
	}
	if (in.n_endpoints == 0 && cfg->kubernetes.vip)
		eps[in.n_endpoints++] = cfg->kubernetes.vip;
	in.context = cfg->kubernetes.cluster_name;
	in.endpoints = eps;
	in.nodes = nodes;
	if (fs_exists(path) && fs_read_file(&prev, path, FILE_MAX, err) == 0) {
		in.previous = prev.ptr;
		in.previous_len = prev.len;
	}
	err_clear(err);
	if ((r = talos_talosconfig_build(&out, &in, s, &reused, err)) == 0)
		r = write_file(res, env_dir, "talosconfig", &out, FS_MODE_SECRET, err);
	if (r < 0)
		r = err_wrap(err, "talosconfig");
	buf_release_secret(&prev);
	buf_release_secret(&out);
	free(eps);
	free(nodes);
	free(path);
	return r;
}

void
talos_schematic_of(struct schematic *sch, const struct config *cfg)
{
	sch->kernel_args = (const char *const *)cfg->talos.kernel_args.v;
	sch->n_kernel_args = cfg->talos.kernel_args.n;
	sch->extensions = (const char *const *)cfg->talos.extensions.v;
	sch->n_extensions = cfg->talos.extensions.n;
}

int
talos_schematic_for(char id[65], const struct config *cfg, struct err *err)
{
	struct schematic sch;

	if (cfg->talos.schematic_id) {
		snprintf(id, 65, "%s", cfg->talos.schematic_id);
		return 0;
	}
	talos_schematic_of(&sch, cfg);
	if (talos_schematic_id(id, &sch, err) < 0)
		return err_wrap(err, "schematic");
	return 0;
}

int
talos_schematic_register(const struct config *cfg, const char *base,
			 char id[65], struct err *err)
{
	struct schematic sch;

	if (cfg->talos.schematic_id ||
	    (!cfg->talos.kernel_args.n && !cfg->talos.extensions.n))
		return 0;
	talos_schematic_of(&sch, cfg);
	if (talos_factory_register(base, &sch, id, err) < 0)
		return -1;
	return 1;
}

/*
 * The MAC a node's link is selected by, lower case (as Talos formats
 * mac()): the config's, else the one state.json recorded for its VM,
 * else the one chosen for the VM about to be created (state macs.<name>).
 * NULL when none knows it yet.
 */
static char *
node_mac(const struct node *n, const struct vm_spec *rec, size_t nrec,
	 const char *reserved)
{
	const char *m = n->mac;
	char norm[18];
	size_t i;

	for (i = 0; !m && i < nrec; i++)
		if (rec[i].name && !strcmp(rec[i].name, n->name))
			m = rec[i].mac;
	if (!m)
		m = reserved;
	if (!m || !net_mac_parse(m, norm))
		return NULL;
	for (i = 0; norm[i]; i++)
		norm[i] = (char)tolower((unsigned char)norm[i]);
	return xstrdup(norm);
}

static int
gen_here(const struct config *cfg, const char *env_dir,
	 struct gen_result *res, struct err *err)
{
	struct talos_secrets *s = NULL;
	struct ydocs docs[2] = { YDOCS_INIT, YDOCS_INIT };  /* worker, cp */
	struct user_patch *up = NULL;
	struct buf b = BUF_INIT_SECRET;
	struct mc_input in;
	char *path = NULL, *installer = NULL;
	const char *ver = cfg->talos.version;
	int r = 0;

	bool check_only = res->check_only;

	memset(res, 0, sizeof(*res));
	res->check_only = check_only;
	if (cfg->n_nodes == 0)
		return err_set(err, ERR_USAGE, "no talos nodes in the config");
	if (!ver || !cfg->kubernetes.cluster_name || !cfg->kubernetes.endpoint ||
	    !cfg->kubernetes.version)
		return err_set(err, ERR_USAGE, "talos.version, kubernetes.cluster_name, endpoint and version are required");
	if ((r = talos_schematic_for(res->schematic_id, cfg, err)) < 0)
		return r;
	res->iso_url = talos_factory_iso_url(cfg->platform == PLATFORM_PROXMOX
					     ? cfg->proxmox.image_factory : NULL,
					     res->schematic_id, ver, "metal");
	res->installer_image = cfg->talos.installer_image
		? xstrdup(cfg->talos.installer_image)
		: talos_factory_installer(res->schematic_id, ver, "metal");
	installer = res->installer_image;

	path = fs_join(env_dir, "secrets.yaml");
	if (check_only && !fs_exists(path)) {
		/* Everything would be new. */
		res->secrets_created = true;
		res->files_changed = res->files_total = 1;
		r = 0;
		goto out;
	}
	free(path);
	path = fs_join(env_dir, "patches");
	if (!check_only && (r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err)) < 0)
		goto out;
	free(path);
	path = fs_join(env_dir, "nodes");
	if (!check_only && (r = fs_mkdir_p(path, FS_MODE_DIR_PRIVATE, err)) < 0)
		goto out;
	free(path);
	path = fs_join(env_dir, "secrets.yaml");
	if ((r = talos_secrets_load_or_create(&s, path, &res->secrets_created, err)) < 0)
		goto out;

	fill_input(&in, cfg, installer);
	for (int cp = 1; cp >= 0; cp--) {
		buf_release_secret(&b);
		if ((r = talos_mc_generate(&docs[cp], &in, s, cp, err)) < 0 ||
		    (r = ydocs_emit(&b, &docs[cp], err)) < 0 ||
		    (r = write_file(res, env_dir, cp ? "controlplane.yaml" : "worker.yaml",
				    &b, FS_MODE_SECRET, err)) < 0)
			goto out;
	}
	up = xcalloc(cfg->talos.n_patches + 1, sizeof(*up));
	{
		struct vm_spec *rec = NULL;
		size_t nrec = 0;
		struct state st;
		struct err e2 = ERR_INIT;

		char **reserved = xcalloc(cfg->n_nodes + 1, sizeof(char *));

		/* The journal's MACs; without a readable journal, none. */
		if (state_load(&st, env_dir, &e2) == 0) {
			state_vms(&st, &rec, &nrec);
			for (size_t i = 0; i < cfg->n_nodes; i++)
				reserved[i] = state_mac_get(&st, cfg->nodes[i].name);
			state_release(&st);
		}
		for (size_t i = 0; i < cfg->n_nodes && r == 0; i++) {
			const struct node *n = &cfg->nodes[i];
			char *mac = node_mac(n, rec, nrec, reserved[i]);

			r = gen_node(res, cfg, env_dir, n, mac,
				     &docs[n->role == ROLE_CONTROLPLANE], up, err);
			free(mac);
		}
		for (size_t i = 0; i < nrec; i++)
			vm_spec_release(&rec[i]);
		free(rec);
		for (size_t i = 0; i < cfg->n_nodes; i++)
			free(reserved[i]);
		free(reserved);
		if (r < 0)
			goto out;
	}
	if ((r = gen_talosconfig(res, cfg, env_dir, s, err)) == 0 &&
	    !res->check_only)
		r = remove_stale(res, env_dir, err);
out:
	free(path);
	buf_release_secret(&b);
	ydocs_release(&docs[0]);
	ydocs_release(&docs[1]);
	user_patches_release(up, cfg->talos.n_patches);
	talos_secrets_free(s);
	return r;
}

/*
 * talos_gen runs gen_here in a child process (util/isolate): it parses
 * secrets.yaml and emits every machine config and the talosconfig with
 * libfyaml, whose copies of the keys are freed unwiped. Only the result
 * below, which holds no secret, comes back.
 */
struct gen_call {
	const struct config *cfg;
	const char *env_dir;
	bool check_only;
};

static int
gen_child(void *ctx, struct buf *out, struct err *err)
{
	struct gen_call *g = ctx;
	struct gen_result res = { .check_only = g->check_only };
	int r = gen_here(g->cfg, g->env_dir, &res, err);

	isolate_put_str(out, res.schematic_id);
	isolate_put_str(out, res.iso_url);
	isolate_put_str(out, res.installer_image);
	isolate_put_long(out, res.secrets_created);
	isolate_put_long(out, res.files_changed);
	isolate_put_long(out, res.files_total);
	isolate_put_str(out, res.changed);
	isolate_put_str(out, res.images);
	isolate_put_long(out, res.files_removed);
	isolate_put_long(out, res.files_kept);
	isolate_put_mem(out, res.manifest.ptr, res.manifest.len);
	isolate_put_mem(out, res.kept.ptr, res.kept.len);
	gen_result_release(&res);
	return r;
}

int
talos_gen(const struct config *cfg, const char *env_dir,
	  struct gen_result *res, struct err *err)
{
	struct gen_call g = { cfg, env_dir, res->check_only };
	struct buf b = BUF_INIT_SECRET;
	struct isolate_reader rd;
	char *id;
	int r;

	r = isolate_run(gen_child, &g, &b, err);
	memset(res, 0, sizeof(*res));
	buf_init(&res->manifest);
	buf_init(&res->kept);
	res->check_only = g.check_only;
	if (b.len == 0) {
		buf_release(&b);
		return r;
	}
	isolate_reader_init(&rd, &b);
	id = isolate_get_str(&rd);
	snprintf(res->schematic_id, sizeof(res->schematic_id), "%s",
		 id ? id : "");
	free(id);
	res->iso_url = isolate_get_str(&rd);
	res->installer_image = isolate_get_str(&rd);
	res->secrets_created = isolate_get_long(&rd) != 0;
	res->files_changed = (int)isolate_get_long(&rd);
	res->files_total = (int)isolate_get_long(&rd);
	res->changed = isolate_get_str(&rd);
	res->images = isolate_get_str(&rd);
	res->files_removed = (int)isolate_get_long(&rd);
	res->files_kept = (int)isolate_get_long(&rd);
	isolate_get_mem(&rd, &res->manifest);
	isolate_get_mem(&rd, &res->kept);
	buf_release(&b);
	if (rd.bad || rd.left) {
		gen_result_release(res);
		return err_set(err, ERR_FAIL, "gen: malformed result from the "
			       "isolated step");
	}
	for (char *p = res->kept.ptr, *nl; (nl = strchr(p, '\n')); p = nl + 1)
		out_warn("gen: kept %.*s: changed since gen wrote it, and its "
			 "node is no longer in the config", (int)(nl - p), p);
	return r;
}
