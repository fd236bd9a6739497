/*
 * ph_gitops: Flux, when the config has `gitops` (docs/addons.md).
 *
 * 1. The Flux controllers at a pinned version, by the installer Job
 *    (`flux install` from the flux-cli image of that version); then the
 *    CRDs strata applies Established and the four controllers rolled out.
 * 2. The Git credentials Secret flux-system/flux-system: over ssh:// a
 *    deploy key strata makes once (Ed25519, ENV/flux-deploy-key 0600, the
 *    public key printed in OpenSSH form with where to add it) and the
 *    config's known_hosts; over https:// the token as password.
 * 3. The sops-age Secret from ENV/sops.agekey (made by `strata gen`), when
 *    that file exists; the Kustomizations decrypt with it.
 * 4. GitRepository flux-system and the Kustomizations flux-system ->
 *    platform -> apps (dependsOn), interval from the config (5m), prune,
 *    wait (../shared/reference/kubernetes/FACTS.md §4-6).
 *
 * Current when the digest of all that matches addons.gitops in state.json
 * and the objects exist: then nothing is written.
 */
#include "gitops/gitops.h"
#include "phase/phase.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "phase/addon.h"
#include "talos/pki.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/fs.h"
#include "util/out.h"

#define FLUX_VERSION "v2.9.4"
#define FLUX_IMAGE "ghcr.io/fluxcd/flux-cli:" FLUX_VERSION
#define FLUX_NS "flux-system"
#define JOB_NAME "strata-flux-install"
#define DEPLOY_KEY "flux-deploy-key"
#define AGE_KEY "sops.agekey"

static const char *const flux_crds[] = {
	"gitrepositories.source.toolkit.fluxcd.io",
	"kustomizations.kustomize.toolkit.fluxcd.io",
	"helmrepositories.source.toolkit.fluxcd.io",
	"helmreleases.helm.toolkit.fluxcd.io",
	NULL
};
static const char *const flux_controllers[] = {
	"source-controller", "kustomize-controller", "helm-controller",
	"notification-controller", NULL
};

static bool
gitops_should_run(struct apply_ctx *c)
{
	return c->cfg->gitops.enabled && c->cfg->n_nodes > 0;
}

/* What `flux install` creates (FACTS §3): the namespace, CRDs, service
 * accounts, deployments, services, network policies, the resource quota,
 * cluster roles and bindings (cluster-reconciler binds cluster-admin:
 * bind and escalate). */
static json_t *
flux_rules(void)
{
	return json_pack(
		"[{s:[s], s:[sssss], s:[ssssss]},"
		" {s:[s], s:[s], s:[ssssss]},"
		" {s:[s], s:[s], s:[ssssss]},"
		" {s:[s], s:[s], s:[ssssss]},"
		" {s:[s], s:[ss], s:[ssssssss]}]",
		"apiGroups", "", "resources", "namespaces", "serviceaccounts",
		"services", "resourcequotas", "configmaps",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "apps", "resources", "deployments",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "apiextensions.k8s.io", "resources",
		"customresourcedefinitions",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "networking.k8s.io", "resources", "networkpolicies",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"apiGroups", "rbac.authorization.k8s.io", "resources",
		"clusterroles", "clusterrolebindings",
		"verbs", "get", "list", "create", "update", "patch", "delete",
		"escalate", "bind");
}

static int
flux_install(struct apply_ctx *c, struct kube_client *kc,
	     const struct kube_wait *w, long long *job_ms, struct err *err)
{
	struct installer in = { .name = JOB_NAME, .image = FLUX_IMAGE };
	json_t *id = json_pack("{s:s}", "flux", FLUX_VERSION);
	char sha[65];
	bool started;
	size_t i;
	int r;

	(void)c;
	addon_digest(id, sha);
	json_decref(id);
	in.sha = sha;
	in.rules = flux_rules();
	in.command = json_pack("[sss]", "flux", "install",
			       "--namespace=" FLUX_NS);
	r = addon_run_installer(kc, &in, w, &started, job_ms, err);
	json_decref(in.rules);
	json_decref(in.command);
	for (i = 0; r == 0 && flux_crds[i]; i++)
		r = kube_wait_crd(kc, flux_crds[i], w, err);
	for (i = 0; r == 0 && flux_controllers[i]; i++)
		r = kube_wait_rollout(kc, "Deployment", FLUX_NS,
				      flux_controllers[i], w, err);
	return r;
}

/* "ssh-ed25519 AAAA... comment" for an Ed25519 key. */
static int
openssh_public(struct buf *out, EVP_PKEY *key, const char *comment,
	       struct err *err)
{
	unsigned char raw[32], blob[4 + 11 + 4 + 32];
	size_t n = sizeof(raw);
	char *b64;

	if (EVP_PKEY_get_raw_public_key(key, raw, &n) != 1 || n != 32)
		return err_set(err, ERR_FAIL, "deploy key: not an Ed25519 key");
	/* RFC 8709: string "ssh-ed25519", string key */
	memcpy(blob, "\0\0\0\x0bssh-ed25519", 15);
	memcpy(blob + 15, "\0\0\0\x20", 4);
	memcpy(blob + 19, raw, 32);
	b64 = pki_b64(blob, sizeof(blob), 0);
	buf_addf(out, "ssh-ed25519 %s %s", b64, comment);
	free(b64);
	return 0;
}

/* ENV/flux-deploy-key: read it, or make it once. *fresh says which. */
static int
deploy_key(struct apply_ctx *c, struct buf *pem, struct buf *pub, bool *fresh,
	   struct err *err)
{
	char *path = fs_join(c->env_dir, DEPLOY_KEY);
	EVP_PKEY *key = NULL;
	char comment[200];
	int r = 0;

	*fresh = false;
	if (fs_exists(path)) {
		if ((r = fs_read_file(pem, path, 1 << 16, err)) < 0)
			goto out;
		if (!(key = pki_key_from_pem(pem->ptr, pem->len))) {
			r = err_set(err, ERR_FAIL, "%s: not a private key", path);
			goto out;
		}
	} else {
		if (!(key = pki_key_new(PKI_ED25519)) ||
		    pki_key_pem(pem, key) < 0) {
			r = err_set(err, ERR_FAIL, "cannot make an Ed25519 key");
			goto out;
		}
		if ((r = fs_write_atomic(path, pem->ptr, pem->len,
					 FS_MODE_SECRET, err)) < 0)
			goto out;
		*fresh = true;
	}
	snprintf(comment, sizeof(comment), "strata-%s-flux", c->cfg->name);
	r = openssh_public(pub, key, comment, err);
out:
	EVP_PKEY_free(key);
	free(path);
	return r;
}

static json_t *
secret(const char *name, json_t *string_data)
{
	return json_pack("{s:s, s:s, s:{s:s, s:s, s:{s:s}}, s:s, s:o}",
			 "apiVersion", "v1", "kind", "Secret", "metadata",
			 "name", name, "namespace", FLUX_NS, "labels",
			 "app.kubernetes.io/managed-by", "strata", "type",
			 "Opaque", "stringData", string_data);
}

/* The documents strata applies, in order. */
static int
build_objects(struct apply_ctx *c, json_t *docs, bool *have_age,
	      struct err *err)
{
	const struct gitops_config *g = &c->cfg->gitops;
	bool ssh = !strncmp(g->repo, "ssh://", 6);
	static const char *const layers[] = { "flux-system", "platform", "apps" };
	struct gitops_paths gp = { 0 };
	char *agepath = fs_join(c->env_dir, AGE_KEY);
	struct buf pem = BUF_INIT, pub = BUF_INIT, age = BUF_INIT;
	size_t i;
	int r = 0;

	*have_age = false;
	if (ssh) {
		bool fresh;

		if ((r = deploy_key(c, &pem, &pub, &fresh, err)) < 0)
			goto out;
		if (fresh) {
			char *pubpath = fs_join(c->env_dir, DEPLOY_KEY ".pub");

			buf_addch(&pub, '\n');
			r = fs_write_atomic(pubpath, pub.ptr, pub.len,
					    FS_MODE_PUBLIC, err);
			pub.ptr[--pub.len] = '\0';
			free(pubpath);
			if (r < 0)
				goto out;
			out_note("new deploy key for %s; add it (read-only) to "
				 "that repository's deploy keys (GitHub: Settings "
				 "> Deploy keys; GitLab: Settings > Repository > "
				 "Deploy keys):\n    %s\n(also in %s/%s.pub)",
				 g->repo, pub.ptr, c->env_dir, DEPLOY_KEY);
		}
		json_array_append_new(docs, secret("flux-system", json_pack(
			"{s:s, s:s, s:s}", "identity", pem.ptr, "identity.pub",
			pub.ptr, "known_hosts", g->known_hosts)));
	} else if (g->token.kind != SECRET_NONE) {
		char *tok = NULL;

		if ((r = config_secret_resolve(&tok, c->cfg, &g->token,
					       "gitops.token", err)) < 0)
			goto out;
		json_array_append_new(docs, secret("flux-system", json_pack(
			"{s:s, s:s}", "username", "git", "password", tok)));
		OPENSSL_cleanse(tok, strlen(tok));
		free(tok);
	}
	if (fs_exists(agepath)) {
		if ((r = fs_read_file(&age, agepath, 1 << 16, err)) < 0)
			goto out;
		while (age.len && (age.ptr[age.len - 1] == '\n' ||
				   age.ptr[age.len - 1] == '\r'))
			age.ptr[--age.len] = '\0';
		if (strncmp(age.ptr, "AGE-SECRET-KEY-1", 16)) {
			r = err_set(err, ERR_FAIL, "%s: not an age identity "
				    "(AGE-SECRET-KEY-1...)", agepath);
			goto out;
		}
		buf_addch(&age, '\n');
		json_array_append_new(docs, secret("sops-age", json_pack(
			"{s:s}", "age.agekey", age.ptr)));
		*have_age = true;
	}
	{
		json_t *spec = json_pack("{s:s, s:s, s:{s:s}}", "url", g->repo,
					 "interval", "1m", "ref", "branch",
					 g->branch);

		if (ssh || g->token.kind != SECRET_NONE)
			json_object_set_new(spec, "secretRef", json_pack(
				"{s:s}", "name", "flux-system"));
		json_array_append_new(docs, json_pack(
			"{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion",
			"source.toolkit.fluxcd.io/v1", "kind", "GitRepository",
			"metadata", "name", "flux-system", "namespace", FLUX_NS,
			"spec", spec));
	}
	gitops_paths(&gp, c->cfg);
	for (i = 0; i < 3; i++) {
		/* The env's overlay of each layer in the tree strata gen writes
		 * (src/gitops). */
		const char *path = i == 0 ? gp.flux : i == 1 ? gp.platform : gp.apps;
		json_t *spec = json_pack(
			"{s:s, s:s, s:s, s:b, s:b, s:s, s:{s:s, s:s}}",
			"interval", g->interval, "retryInterval", "1m",
			"path", path, "prune", 1, "wait", 1, "timeout", "5m",
			"sourceRef", "kind", "GitRepository", "name",
			"flux-system");

		if (i > 0)
			json_object_set_new(spec, "dependsOn", json_pack(
				"[{s:s}]", "name", layers[i - 1]));
		if (*have_age)
			json_object_set_new(spec, "decryption", json_pack(
				"{s:s, s:{s:s}}", "provider", "sops",
				"secretRef", "name", "sops-age"));
		json_array_append_new(docs, json_pack(
			"{s:s, s:s, s:{s:s, s:s}, s:o}", "apiVersion",
			"kustomize.toolkit.fluxcd.io/v1", "kind", "Kustomization",
			"metadata", "name", layers[i], "namespace", FLUX_NS,
			"spec", spec));
	}
out:
	gitops_paths_release(&gp);
	buf_release_secret(&pem);
	buf_release_secret(&age);
	buf_release(&pub);
	free(agepath);
	return r;
}

/* Every object exists (a GET, nothing written). */
static bool
objects_exist(struct kube_client *kc, json_t *docs)
{
	json_t *d;
	size_t i;

	json_array_foreach(docs, i, d) {
		struct err e = ERR_INIT;
		json_t *md = json_object_get(d, "metadata"), *o = NULL;

		if (kube_get(kc, json_string_value(json_object_get(d, "apiVersion")),
			     json_string_value(json_object_get(d, "kind")),
			     json_string_value(json_object_get(md, "namespace")),
			     json_string_value(json_object_get(md, "name")), &o,
			     &e) < 0)
			return false;
		json_decref(o);
	}
	return true;
}

static int
gitops_run(struct apply_ctx *c, struct err *err)
{
	char *kpath = fs_join(c->env_dir, "kubeconfig");
	struct kube_client *kc = NULL;
	struct kube_wait w = { c->wait_ms, &phase_interrupted, "gitops" };
	json_t *docs = json_array(), *d, *idv;
	char sha[65], *done = NULL;
	long long t0 = clock_mono_ms(), job_ms = 0, tw;
	bool have_age;
	size_t i;
	int r;

	if ((r = kube_client_load(&kc, kpath, 10000, err)) < 0)
		goto out;
	tw = clock_mono_ms();
	if ((r = flux_install(c, kc, &w, &job_ms, err)) < 0)
		goto out;
	tw = clock_mono_ms() - tw - job_ms;
	if ((r = build_objects(c, docs, &have_age, err)) < 0)
		goto out;
	idv = json_pack("{s:s, s:O}", "flux", FLUX_VERSION, "objects", docs);
	addon_digest(idv, sha);
	json_decref(idv);
	done = state_addon_get(&c->st, "gitops", "config_sha256");
	if (done && !strcmp(done, sha) && objects_exist(kc, docs)) {
		out_step("gitops: Flux %s and its sync objects are current; "
			 "nothing written", FLUX_VERSION);
		goto out;
	}
	json_array_foreach(docs, i, d)
		if ((r = kube_apply(kc, d, NULL, err)) < 0)
			goto out;
	if (!have_age)
		out_warn("gitops: no %s/%s: no sops-age Secret, so the "
			 "Kustomizations decrypt nothing (strata gen makes the "
			 "key)", c->env_dir, AGE_KEY);
	if ((r = state_addon_set(&c->st, "gitops", "config_sha256", sha,
				 err)) < 0)
		goto out;
	{
		long long all = clock_mono_ms() - t0;

		out_step("gitops: Flux %s; GitRepository flux-system (%s, "
			 "branch %s); Kustomizations flux-system -> platform -> "
			 "apps every %s", FLUX_VERSION, c->cfg->gitops.repo,
			 c->cfg->gitops.branch, c->cfg->gitops.interval);
		out_step("gitops: took %.2fs: Job %.2fs, CRDs and controllers "
			 "%.2fs, strata %.3fs", all / 1000.0, job_ms / 1000.0,
			 tw / 1000.0, (all - job_ms - tw) / 1000.0);
	}
out:
	if (r < 0 && phase_interrupted && err->code != ERR_INTR)
		err->code = ERR_INTR;
	json_decref(docs);
	free(done);
	kube_client_free(kc);
	free(kpath);
	return r < 0 ? -1 : 0;
}

static void
gitops_dry_run(struct apply_ctx *c, FILE *fp)
{
	fprintf(fp, "    Job kube-system/%s: flux install %s unless done; "
		"GitRepository %s (branch %s), Kustomizations flux-system -> "
		"platform -> apps every %s\n", JOB_NAME, FLUX_VERSION,
		c->cfg->gitops.repo, c->cfg->gitops.branch,
		c->cfg->gitops.interval);
}

const struct phase ph_gitops = {
	.name = "gitops",
	.title = "Flux GitOps",
	.should_run = gitops_should_run,
	.run = gitops_run,
	.dry_run = gitops_dry_run,
};
