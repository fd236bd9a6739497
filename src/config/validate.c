#include "config/validate.h"
#include "config/firewall.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <libfyaml.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "age/age.h"
#include "config/decode.h"
#include "config/talos_schema.h"
#include "provider/proxmox/cloudinit.h"
#include "talos/factory.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/fs.h"
#include "util/net.h"
#include "util/yaml.h"

static const struct talos_compat compat[] = {
	{ 12, "v1.12.11", "1.35.4", 30, 35 },
	{ 13, "v1.13.9", "1.36.0", 31, 36 },
};

const struct talos_compat *
config_talos_compat(int minor)
{
	size_t i;

	for (i = 0; i < sizeof(compat) / sizeof(compat[0]); i++)
		if (compat[i].minor == minor)
			return &compat[i];
	return NULL;
}

struct vctx {
	struct config *cfg;
	struct diag *diag;
	unsigned flags;
};

static void
vreport(struct vctx *v, enum diag_level lvl, const char *path,
	const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;
	int line, col;

	config_pos(v->cfg, path, &line, &col);
	buf_vaddf(&b, fmt, ap);
	diag_add(v->diag, lvl, line, col, path, "%s", b.ptr);
	buf_release(&b);
}

static void __attribute__((format(printf, 3, 4)))
verr(struct vctx *v, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(v, DIAG_ERROR, path, fmt, ap);
	va_end(ap);
}

static void __attribute__((format(printf, 3, 4)))
vwarn(struct vctx *v, const char *path, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vreport(v, DIAG_WARNING, path, fmt, ap);
	va_end(ap);
}

/* Was this display path ("proxmox.tls.insecure") written in the file? */
static bool
has_key(const struct config *cfg, const char *path)
{
	return config_node_at(cfg, path) != NULL;
}

static bool
is_seq(const struct config *cfg, const char *path)
{
	struct fy_node *n = config_node_at(cfg, path);

	return n && fy_node_get_type(n) == FYNT_SEQUENCE;
}

static bool
is_mapping(const struct config *cfg, const char *path)
{
	struct fy_node *n = config_node_at(cfg, path);

	return n && fy_node_get_type(n) == FYNT_MAPPING;
}

static void
set_default(char **dst, const char *value)
{
	if (!*dst && value)
		*dst = xstrdup(value);
}

static void
strlist_push(struct str_list *l, const char *s)
{
	l->v = xrealloc(l->v, (l->n + 2) * sizeof(char *));
	l->v[l->n++] = xstrdup(s);
}

static bool
strlist_has(const struct str_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

/* "v1.12.11" or "1.12.11" -> major, minor, patch. */
static bool
parse_version(const char *s, int *maj, int *min, int *pat)
{
	char tail;

	if (*s == 'v')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	if (sscanf(s, "%d.%d.%d%c", maj, min, pat, &tail) != 3)
		return false;
	/* Reject leading zeros and signs that sscanf lets through. */
	for (; *s; s++)
		if (!isdigit((unsigned char)*s) && *s != '.')
			return false;
	return *maj >= 0 && *min >= 0 && *pat >= 0;
}

static bool
is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return s[n] == '\0';
}

/* --- sections ----------------------------------------------------------- */

static void
check_platform_sections(struct vctx *v)
{
	struct config *cfg = v->cfg;

	if (cfg->platform == PLATFORM_PROXMOX) {
		if (!has_key(cfg, "proxmox"))
			verr(v, "platform",
			     "platform is 'proxmox' but there is no 'proxmox' "
			     "section");
		if (has_key(cfg, "vps"))
			verr(v, "vps",
			     "section is for platform 'vps', but platform is "
			     "'proxmox'");
	} else if (cfg->platform == PLATFORM_VPS) {
		if (!has_key(cfg, "vps"))
			verr(v, "platform",
			     "platform is 'vps' but there is no 'vps' section");
		if (has_key(cfg, "proxmox"))
			verr(v, "proxmox",
			     "section is for platform 'proxmox', but platform "
			     "is 'vps'");
		if (cfg->n_vms)
			verr(v, "vms",
			     "cloud-init VMs need platform 'proxmox'");
	}
}

static bool
has_false(const struct config *cfg, const char *path)
{
	struct fy_node *n = config_node_at(cfg, path);
	const char *s = n && fy_node_get_type(n) == FYNT_SCALAR
				? fy_node_get_scalar0(n) : NULL;

	return s && (!strcmp(s, "false") || !strcmp(s, "False") ||
		     !strcmp(s, "FALSE"));
}

/*
 * With CONFIG_CHECK_SECRETS (validate), a secret must be there: an unset
 * variable or a missing or empty file is an error now, not at plan. The
 * value is looked at only to see that it is not blank, and never printed.
 * Offline commands (gen) load without it: they never need these secrets.
 */
static void
check_secret(struct vctx *v, const struct secret_ref *r, const char *path,
	     bool required)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	const char *val;
	char *p;
	size_t i;

	if (r->kind == SECRET_NONE) {
		if (required)
			verr(v, path, "missing; give ${ENV_VAR}, file:PATH or "
				      "the value");
		return;
	}
	if (!r->text)
		return;   /* malformed: the decoder said so */
	if (r->kind == SECRET_LITERAL) {
		vwarn(v, path,
		      "secret is written in plain text; allowed because env "
		      "folders are private, but ${ENV_VAR} or file:PATH keeps "
		      "it out of copies and backups");
		return;
	}
	if (!(v->flags & CONFIG_CHECK_SECRETS))
		return;
	if (r->kind == SECRET_ENV) {
		val = getenv(r->text);
		if (!val || !*val)
			verr(v, path,
			     "environment variable '%s' is %s; export it "
			     "before running strata, or use file:PATH",
			     r->text, val ? "empty" : "not set");
		return;
	}
	p = r->text[0] == '/' ? xstrdup(r->text) : fs_join(v->cfg->dir, r->text);
	if (!fs_exists(p)) {
		verr(v, path, "secret file '%s' does not exist", r->text);
	} else if (fs_is_dir(p)) {
		verr(v, path, "secret file '%s' is a directory", r->text);
	} else if (fs_read_file(&b, p, 64 * 1024, &e) < 0) {
		verr(v, path, "secret file '%s' cannot be read: %s", r->text,
		     strstr(e.msg, "larger than") ? "larger than 64 KiB"
						  : "permission denied or I/O "
						    "error");
	} else {
		for (i = 0; i < b.len; i++)
			if (!b.ptr[i] || !strchr(" \t\r\n", b.ptr[i]))
				break;
		if (i == b.len)
			verr(v, path, "secret file '%s' is empty", r->text);
	}
	buf_release_secret(&b);
	free(p);
}

/*
 * An API endpoint is https://HOST[:PORT] and nothing after it: strata
 * adds /api2/json itself, and a path there would double it.
 */
static void
check_endpoint(struct vctx *v, const char *url, const char *path)
{
	const char *h = url + 8, *end, *colon;
	size_t hl;

	end = h + strcspn(h, "/?#");
	if (*end && strcmp(end, "/"))
		verr(v, path,
		     "'%s' has a path; give only https://HOST:PORT (strata "
		     "adds /api2/json itself)", url);
	colon = memchr(h, ':', (size_t)(end - h));
	hl = (size_t)((colon ? colon : end) - h);
	if (hl == 0 || memchr(h, '@', (size_t)(end - h))) {
		verr(v, path, "'%s' has no host name", url);
		return;
	}
	if (colon) {
		const char *d = colon + 1;
		long port = 0;

		if (d == end) {
			verr(v, path, "'%s' has an empty port", url);
			return;
		}
		for (; d < end; d++) {
			if (!isdigit((unsigned char)*d)) {
				verr(v, path, "'%s': the port is not a number",
				     url);
				return;
			}
			if (port <= 65535)
				port = port * 10 + (*d - '0');
		}
		if (port < 1 || port > 65535)
			verr(v, path, "'%s': port %.*s is out of range (1..65535)",
			     url, (int)(end - colon - 1), colon + 1);
	}
}

/* Proxmox storage ids: ^[a-z][a-z0-9\-_.]*[a-z0-9]$, case-insensitive. */
static void
check_storage_id(struct vctx *v, const char *id, const char *path)
{
	size_t n, i;
	bool ok;

	if (!id || !has_key(v->cfg, path))
		return;
	n = strlen(id);
	ok = n >= 2 && isalpha((unsigned char)id[0]) &&
	     isalnum((unsigned char)id[n - 1]);
	for (i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)id[i]) || strchr("-_.", id[i]);
	if (!ok)
		verr(v, path,
		     "'%s' is not a Proxmox storage id (a letter, then letters, "
		     "digits, '-', '_' or '.', ending with a letter or digit)",
		     id);
}

static bool
pem_has_cert(const struct buf *b)
{
	BIO *bio = BIO_new_mem_buf(b->ptr, (int)b->len);
	X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
	bool ok = x != NULL;

	X509_free(x);
	BIO_free(bio);
	ERR_clear_error();
	return ok;
}

/* The CA file must hold at least one PEM certificate. */
static void
check_ca_file(struct vctx *v, const char *file, const char *path)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char *p = file[0] == '/' ? xstrdup(file) : fs_join(v->cfg->dir, file);

	if (!fs_exists(p))
		vwarn(v, path, "'%s' does not exist yet; plan and apply will "
		      "need it", file);
	else if (fs_is_dir(p) || fs_read_file(&b, p, 1024 * 1024, &e) < 0)
		verr(v, path, "'%s' cannot be read as a file", file);
	else if (!memmem(b.ptr, b.len, "-----BEGIN CERTIFICATE-----", 27))
		verr(v, path, "'%s' is not a PEM certificate file (no "
		     "'-----BEGIN CERTIFICATE-----' line)", file);
	else if (!pem_has_cert(&b))
		verr(v, path, "'%s' has a BEGIN CERTIFICATE line but no "
		     "certificate OpenSSL can read", file);
	buf_release(&b);
	free(p);
}

static void
check_proxmox(struct vctx *v)
{
	struct proxmox_config *p = &v->cfg->proxmox;
	struct tls_config *t = &p->tls;
	const char *at, *bang;
	int ntls = 0;
	size_t i;

	if (!has_key(v->cfg, "proxmox.endpoint"))
		verr(v, "proxmox", "missing required key 'endpoint'");
	else if (!p->endpoint)
		;
	else if (strncmp(p->endpoint, "https://", 8))
		verr(v, "proxmox.endpoint",
		     "'%s' must be an https:// URL (the API only speaks TLS)",
		     p->endpoint);
	else
		check_endpoint(v, p->endpoint, "proxmox.endpoint");
	if (!has_key(v->cfg, "proxmox.token_id")) {
		verr(v, "proxmox", "missing required key 'token_id'");
	} else if (p->token_id) {
		at = strchr(p->token_id, '@');
		bang = strchr(p->token_id, '!');
		if (!at || !bang || bang < at || at == p->token_id ||
		    bang == at + 1 || !bang[1])
			verr(v, "proxmox.token_id",
			     "'%s' is not an API token id (USER@REALM!TOKENID)",
			     p->token_id);
	}
	check_secret(v, &p->token_secret, "proxmox.token_secret", true);

	/* Count what was written, valid or not, so one typo is one error. */
	ntls = has_key(v->cfg, "proxmox.tls.ca_file") +
	       has_key(v->cfg, "proxmox.tls.fingerprint") +
	       (t->insecure ||
		(has_key(v->cfg, "proxmox.tls.insecure") &&
		 !has_false(v->cfg, "proxmox.tls.insecure")));
	if (ntls == 0)
		verr(v, "proxmox",
		     "say how the API certificate is verified: tls.ca_file, "
		     "tls.fingerprint, or tls.insecure: true");
	else if (ntls > 1)
		verr(v, "proxmox.tls",
		     "give only one of ca_file, fingerprint and insecure");
	if (t->insecure)
		vwarn(v, "proxmox.tls.insecure",
		      "TLS verification is off: anyone on the path can read "
		      "the API token; pin tls.fingerprint instead");
	if (t->fingerprint) {
		struct buf b = BUF_INIT;
		const char *s;

		for (s = t->fingerprint; *s; s++)
			if (*s != ':')
				buf_addch(&b, (char)tolower((unsigned char)*s));
		if (b.len != 64 || !is_hex(b.ptr, 64)) {
			verr(v, "proxmox.tls.fingerprint",
			     "'%s' is not a SHA-256 fingerprint (64 hex digits, "
			     "colons allowed)", t->fingerprint);
			buf_release(&b);
		} else {
			free(t->fingerprint);
			t->fingerprint = buf_detach(&b, NULL);
		}
	}
	if (t->ca_file)
		check_ca_file(v, t->ca_file, "proxmox.tls.ca_file");
	if (!has_key(v->cfg, "proxmox.nodes"))
		verr(v, "proxmox",
		     "missing required key 'nodes' (the Proxmox node names VMs "
		     "may run on)");
	else if (!p->nodes.n && is_seq(v->cfg, "proxmox.nodes"))
		verr(v, "proxmox.nodes",
		     "empty list: name at least one Proxmox node VMs may run on");
	check_storage_id(v, p->disk_storage, "proxmox.storage.disks");
	check_storage_id(v, p->iso_storage, "proxmox.storage.isos");
	for (i = 0; i < p->nodes.n; i++) {
		size_t j;

		for (j = 0; j < i; j++)
			if (!strcmp(p->nodes.v[i], p->nodes.v[j])) {
				char path[64];

				snprintf(path, sizeof(path), "proxmox.nodes[%zu]", i);
				verr(v, path, "'%s' is listed twice", p->nodes.v[i]);
			}
	}
	if (!p->vmid_base && !has_key(v->cfg, "proxmox.vmid.base"))
		verr(v, "proxmox",
		     "missing 'vmid.base': pick a VM id range no other "
		     "environment uses, e.g. vmid: {base: 1000}");
	if (!p->vmid_count)
		p->vmid_count = 100;
	set_default(&p->disk_storage, "local-lvm");
	set_default(&p->iso_storage, "local");
	set_default(&p->image_factory, "https://" FACTORY_HOST);
	if (strncmp(p->image_factory, "https://", 8) &&
	    strncmp(p->image_factory, "http://", 7))
		verr(v, "proxmox.image_factory", "'%s' is not an http(s) URL; "
		     "write it as https://host[:port]", p->image_factory);
	set_default(&p->bridge, "vmbr0");
	set_default(&p->cpu_type, "x86-64-v2-AES");
	/* Default cidata: the first config (every CA key) then travels only
	 * over the authenticated Proxmox API, never to an unauthenticated
	 * maintenance-mode peer (docs/bootstrap.md, "First boot"). */
	if (p->first_boot == FIRST_BOOT_UNSET)
		p->first_boot = FIRST_BOOT_CIDATA;
}

static void
check_vps(struct vctx *v)
{
	struct vps_config *s = &v->cfg->vps;

	if (!has_key(v->cfg, "vps.host"))
		verr(v, "vps", "missing required key 'host'");
	set_default(&s->ssh_user, "root");
	if (!s->ssh_port)
		s->ssh_port = 22;
	set_default(&s->ssh_key_file, "~/.ssh/id_ed25519");
	set_default(&s->rescue, "generic");
	set_default(&s->disk, "/dev/sda");
	set_default(&s->image_factory, "https://" FACTORY_HOST);
	if (strncmp(s->image_factory, "https://", 8) &&
	    strncmp(s->image_factory, "http://", 7))
		verr(v, "vps.image_factory", "'%s' is not an http(s) URL; write "
		     "it as https://host[:port]", s->image_factory);
	if (strcmp(s->rescue, "generic") && strcmp(s->rescue, "hetzner"))
		verr(v, "vps.rescue", "'%s' is not one of generic, hetzner",
		     s->rescue);
	if (s->ssh_host_fingerprint &&
	    strncmp(s->ssh_host_fingerprint, "SHA256:", 7))
		verr(v, "vps.ssh.host_fingerprint",
		     "'%s' is not an SSH host key fingerprint (SHA256:...)",
		     s->ssh_host_fingerprint);
	/* apply trusts no unknown host key (there is no first-use mode). */
	if (!s->ssh_host_fingerprint)
		verr(v, "vps.ssh",
		     "missing required key 'host_fingerprint': strata never "
		     "trusts an unknown host key; read it on the rescue "
		     "console (ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub)");
}

/* --- talos patches against the Talos config schema --------------------- */

static void
report_inline(void *ctx, enum diag_level lvl, struct fy_node *n,
	      const char *path, const char *msg)
{
	struct vctx *v = ctx;
	int line, col;

	decode_node_pos(n, &line, &col);
	diag_add(v->diag, lvl, line, col, path, "%s", msg);
}

struct pfile {
	struct vctx *v;
	const char *file;
	int errors;
};

static void
report_file(void *ctx, enum diag_level lvl, struct fy_node *n,
	    const char *path, const char *msg)
{
	struct pfile *pf = ctx;
	int line, col;

	decode_node_pos(n, &line, &col);
	diag_add_file(pf->v->diag, pf->file, lvl, line, col, path, "%s", msg);
}

static void
report_file_pos(void *ctx, int line, int col, const char *msg)
{
	struct pfile *pf = ctx;

	pf->errors++;
	diag_add_file(pf->v->diag, pf->file, DIAG_ERROR, line, col, NULL, "%s",
		      msg);
}

/*
 * A patch file: every document parsed (aliases resolved, as gen will) and
 * checked. A lone list is a JSON patch, which Talos refuses on the
 * multi-document configs of v1.12 and later.
 */
static void
check_patch_file(struct vctx *v, const char *path, const struct talos_patch *tp,
		 size_t idx)
{
	struct pfile pf = { v, path, 0 };
	struct buf text = BUF_INIT;
	struct err e = ERR_INIT;
	struct fy_diag_cfg dcfg;
	struct fy_parse_cfg pcfg;
	struct fy_diag *fyd = NULL;
	struct fy_parser *fyp = NULL;
	struct fy_document *doc;
	struct fy_document *docs[64];
	size_t ndocs = 0, i;

	if (fs_is_dir(path) || fs_read_file(&text, path, 1024 * 1024, &e) < 0) {
		diag_add(v->diag, DIAG_ERROR, tp->line, tp->col, NULL,
			 "talos.patches[%zu]: patch file '%s' cannot be read "
			 "(a directory, unreadable or over 1 MiB)", idx, tp->file);
		goto out;
	}
	if (config_check_text(text.ptr, text.len, v->diag, path) < 0)
		goto out;
	yaml_diag_cfg(&dcfg);
	fyd = fy_diag_create(&dcfg);
	if (!fyd)
		goto out;
	fy_diag_set_collect_errors(fyd, true);
	memset(&pcfg, 0, sizeof(pcfg));
	pcfg.flags = FYPCF_QUIET | FYPCF_DEFAULT_VERSION_1_2;
	pcfg.diag = fyd;
	fyp = fy_parser_create(&pcfg);
	if (!fyp || fy_parser_set_string(fyp, text.ptr, text.len) != 0)
		goto out;
	while ((doc = fy_parse_load_document(fyp)) != NULL) {
		if (ndocs == 64 || !fy_document_root(doc)) {
			fy_parse_document_destroy(fyp, doc);
			continue;
		}
		docs[ndocs++] = doc;
	}
	if (fy_parser_get_stream_error(fyp)) {
		struct fy_diag_error *de;
		void *it = NULL;

		de = fy_diag_errors_iterate(fyd, &it);
		report_file_pos(&pf, de ? de->line + 1 : 0, de ? de->column + 1 : 0,
				de ? de->msg : "invalid YAML");
		goto release;
	}
	for (i = 0; i < ndocs; i++) {
		struct fy_node *root;

		if (yaml_resolve(docs[i], report_file_pos, &pf) < 0)
			continue;
		root = fy_document_root(docs[i]);
		if (ndocs == 1 && fy_node_get_type(root) == FYNT_SEQUENCE) {
			report_file(&pf, DIAG_ERROR, root, NULL,
				    "a JSON patch (a list of operations) cannot "
				    "apply to Talos v1.12 and later configs, which "
				    "are several documents; write a strategic merge "
				    "patch (a mapping) instead");
			continue;
		}
		talos_schema_check(root, v->cfg->talos.minor, "", report_file,
				   &pf);
	}
release:
	for (i = 0; i < ndocs; i++)
		fy_parse_document_destroy(fyp, docs[i]);
out:
	if (fyp)
		fy_parser_destroy(fyp);
	if (fyd)
		fy_diag_destroy(fyd);
	buf_release(&text);
}

static void
check_talos(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct talos_config *t = &cfg->talos;
	const struct talos_compat *tc;
	int maj, min, pat;
	size_t i;

	if (!t->version) {
		t->version = xstrdup(compat[0].default_version);
		t->minor = compat[0].minor;
	} else if (!parse_version(t->version, &maj, &min, &pat)) {
		verr(v, "talos.version",
		     "'%s' is not a Talos version (like v1.12.11)", t->version);
		t->minor = compat[0].minor;
	} else if (maj != 1 || !(tc = config_talos_compat(min))) {
		verr(v, "talos.version",
		     "Talos v%d.%d is not supported; strata generates configs "
		     "for v1.12 and v1.13", maj, min);
		t->minor = compat[0].minor;
	} else {
		t->minor = min;
		if (t->version[0] != 'v') {
			char *nv = xasprintf("v%s", t->version);

			free(t->version);
			t->version = nv;
		}
	}

	/* talos.config= (and its talos.config.* options) makes the node
	 * fetch its machine config at boot (FACTS-metal.md §1, §3). strata
	 * does not pass the config that way: it would bake the argument
	 * into the image and host nothing, so say no rather than half do it
	 * (docs/vps.md, "Closing the exposure window"). */
	for (i = 0; i < t->kernel_args.n; i++) {
		char path[64];

		if (strncmp(t->kernel_args.v[i], "talos.config", 12))
			continue;
		snprintf(path, sizeof(path), "talos.schematic.kernel_args[%zu]", i);
		verr(v, path, "a talos.config kernel argument (the machine config "
		     "fetched at boot) is not supported: strata applies the "
		     "config %s; remove it (docs/vps.md, \"Closing the exposure "
		     "window\")", cfg->platform == PLATFORM_PROXMOX
		     ? "from the cidata ISO or in maintenance mode"
		     : "in maintenance mode as soon as the node answers");
	}
	if (t->schematic_id && (t->extensions.n || t->kernel_args.n))
		verr(v, "talos.schematic",
		     "give either schematic.id or extensions/kernel_args (the "
		     "id is computed from them), not both");
	if (t->schematic_id) {
		char *s;

		for (s = t->schematic_id; *s; s++)
			*s = (char)tolower((unsigned char)*s);
		if (strlen(t->schematic_id) != 64 || !is_hex(t->schematic_id, 64))
			verr(v, "talos.schematic.id",
			     "'%s' is not a schematic id (64 hex digits)",
			     t->schematic_id);
	} else {
		bool given = t->extensions.n > 0;
		const char *need[3];
		size_t nneed = 0;

		if (cfg->platform == PLATFORM_PROXMOX &&
		    cfg->network.discovery == DISCOVERY_GUEST_AGENT)
			need[nneed++] = "siderolabs/qemu-guest-agent";
		if (cfg->components.longhorn) {
			need[nneed++] = "siderolabs/iscsi-tools";
			need[nneed++] = "siderolabs/util-linux-tools";
		}
		for (i = 0; i < t->extensions.n; i++) {
			char path[64];

			snprintf(path, sizeof(path), "talos.schematic.extensions[%zu]", i);
			if (!strchr(t->extensions.v[i], '/'))
				verr(v, path,
				     "'%s' is not an extension name (like "
				     "siderolabs/qemu-guest-agent)",
				     t->extensions.v[i]);
		}
		for (i = 0; i < nneed; i++) {
			if (strlist_has(&t->extensions, need[i]))
				continue;
			if (given)
				vwarn(v, "talos.schematic.extensions",
				      "'%s' is missing; %s needs it", need[i],
				      strstr(need[i], "guest")
					      ? "network.discovery: guest-agent"
					      : "components.storage.longhorn");
			else
				strlist_push(&t->extensions, need[i]);
		}
	}
	if (!t->install_disk)
		t->install_disk = xstrdup(cfg->platform == PLATFORM_VPS &&
							  cfg->vps.disk
						  ? cfg->vps.disk
						  : "/dev/sda");
	if (strncmp(t->install_disk, "/dev/", 5))
		verr(v, "talos.install_disk", "'%s' is not a device path (/dev/...)",
		     t->install_disk);
	for (i = 0; i < t->n_patches; i++) {
		struct talos_patch *p = &t->patches[i];
		char dpath[64];
		char *path;

		snprintf(dpath, sizeof(dpath), "talos.patches[%zu]", i);
		if (!p->file) {
			talos_schema_check(config_node_at(cfg, dpath), t->minor,
					   dpath, report_inline, v);
			continue;
		}
		path = p->file[0] == '/' ? xstrdup(p->file)
					 : fs_join(cfg->dir, p->file);
		if (!fs_exists(path))
			diag_add(v->diag, DIAG_ERROR, p->line, p->col, NULL,
				 "talos.patches[%zu]: patch file '%s' does not "
				 "exist", i, p->file);
		else
			check_patch_file(v, path, p, i);
		free(path);
	}
}

static void
check_cidr_default(struct vctx *v, char **dst, const char *def,
		   uint32_t *net, int *prefix)
{
	set_default(dst, def);
	if (!net_cidr_parse(*dst, net, prefix)) {
		*net = 0;
		*prefix = -1;
	}
}

static void
check_kubernetes(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct kubernetes_config *k = &cfg->kubernetes;
	const struct talos_compat *tc = config_talos_compat(cfg->talos.minor);
	uint32_t pn, sn;
	int pp, sp, maj, min, pat;

	if (!tc)
		tc = &compat[0];
	if (!k->cluster_name && cfg->name)
		k->cluster_name = xstrdup(cfg->name);
	if (!k->version) {
		k->version = xstrdup(tc->default_k8s);
	} else if (!parse_version(k->version, &maj, &min, &pat) || maj != 1) {
		verr(v, "kubernetes.version",
		     "'%s' is not a Kubernetes version (like 1.35.4)", k->version);
	} else {
		if (min < tc->k8s_min_minor || min > tc->k8s_max_minor)
			verr(v, "kubernetes.version",
			     "Kubernetes 1.%d is not supported by Talos v1.%d "
			     "(1.%d to 1.%d)", min, tc->minor, tc->k8s_min_minor,
			     tc->k8s_max_minor);
		if (k->version[0] == 'v')
			memmove(k->version, k->version + 1, strlen(k->version));
	}
	check_cidr_default(v, &k->pod_subnet, "10.244.0.0/16", &pn, &pp);
	check_cidr_default(v, &k->service_subnet, "10.96.0.0/12", &sn, &sp);
	set_default(&k->dns_domain, "cluster.local");
	if (pp >= 0 && sp >= 0 && net_overlap(pn, pp, sn, sp))
		verr(v, "kubernetes.service_subnet",
		     "'%s' overlaps pod_subnet '%s'", k->service_subnet,
		     k->pod_subnet);
	if (cfg->network.prefix > 0) {
		if (pp >= 0 && net_overlap(pn, pp, cfg->network.net, cfg->network.prefix))
			verr(v, "kubernetes.pod_subnet",
			     "'%s' overlaps the node network '%s'",
			     k->pod_subnet, cfg->network.cidr);
		if (sp >= 0 && net_overlap(sn, sp, cfg->network.net, cfg->network.prefix))
			verr(v, "kubernetes.service_subnet",
			     "'%s' overlaps the node network '%s'",
			     k->service_subnet, cfg->network.cidr);
	}
	if (k->cni == CNI_UNSET)
		k->cni = CNI_CILIUM;
	if (k->cni == CNI_CILIUM)
		set_default(&k->cni_version, "1.18.4");
	else if (k->cni_version)
		vwarn(v, "kubernetes.cni.version",
		      "ignored: only the cilium CNI has a version here");
	if (k->cni_version) {
		int a, b, c2;

		if (!parse_version(k->cni_version, &a, &b, &c2))
			verr(v, "kubernetes.cni.version",
			     "'%s' is not a version (like 1.18.4)", k->cni_version);
	}
	k->kube_proxy = k->cni != CNI_CILIUM;
	if (k->cni == CNI_CILIUM) {
		set_default(&k->cni_helm_image, DEFAULT_HELM_IMAGE);
		if (k->cni_values && strstr(k->cni_values, "\"masquerade\": true"))
			vwarn(v, "kubernetes.cni.values",
			      "bpf.masquerade with Talos's forwardKubeDNSToHost "
			      "(on by default) breaks CoreDNS");
	} else if (k->cni_values || k->cni_helm_image) {
		verr(v, k->cni_values ? "kubernetes.cni.values"
				      : "kubernetes.cni.helm_image",
		     "only used with cni 'cilium'");
	}
	/* default on, as talosctl v1.13 (--manifests-no-prune turns it off) */
	if (!has_key(cfg, "kubernetes.manifests_prune"))
		k->manifests_prune = true;
	else if (cfg->talos.minor == 12)
		vwarn(v, "kubernetes.manifests_prune",
		      "no effect with Talos v1.12 (talosctl v1.12 does not "
		      "prune the bootstrap manifests); it applies from v1.13");
}

static void
check_network(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct network_config *n = &cfg->network;
	uint32_t gw;
	size_t i;

	if (!has_key(cfg, "network")) {
		verr(v, NULL, "missing required key 'network'");
		return;
	}
	if (!is_mapping(cfg, "network"))
		return;   /* the decoder said what is wrong with it */
	if (!has_key(cfg, "network.cidr"))
		verr(v, "network", "missing required key 'cidr'");
	else if (!n->cidr || !net_cidr_parse(n->cidr, &n->net, &n->prefix))
		n->prefix = 0;
	if (n->prefix > 30 && !n->gateway_onlink)
		verr(v, "network.cidr",
		     "'%s' leaves no room for nodes and a gateway", n->cidr);
	if (!has_key(cfg, "network.gateway")) {
		verr(v, "network", "missing required key 'gateway'");
	} else if (n->gateway && net_ipv4_parse(n->gateway, &gw) && n->prefix > 0) {
		uint32_t bcast = n->net | ~net_mask(n->prefix);

		if (!net_in(gw, n->net, n->prefix)) {
			if (!n->gateway_onlink)
				verr(v, "network.gateway",
				     "'%s' is outside network '%s' (set "
				     "gateway_onlink: true if the provider routes "
				     "it on-link)", n->gateway, n->cidr);
		} else if (gw == n->net || gw == bcast) {
			verr(v, "network.gateway",
			     "'%s' is the %s address of '%s'", n->gateway,
			     gw == n->net ? "network" : "broadcast", n->cidr);
		}
	}
	if (!n->nameservers.n && n->gateway)
		strlist_push(&n->nameservers, n->gateway);
	for (i = 0; i < n->nameservers.n; i++) {
		if (!net_ipv4_parse(n->nameservers.v[i], NULL)) {
			char path[64];

			snprintf(path, sizeof(path), "network.nameservers[%zu]", i);
			verr(v, path, "'%s' is not an IPv4 address",
			     n->nameservers.v[i]);
		}
	}
	if (n->discovery == DISCOVERY_UNSET)
		n->discovery = cfg->platform == PLATFORM_VPS ? DISCOVERY_STATIC
							     : DISCOVERY_GUEST_AGENT;
	if (cfg->platform == PLATFORM_VPS && n->discovery != DISCOVERY_STATIC)
		verr(v, "network.discovery",
		     "a VPS has no guest agent or DHCP server of ours; use "
		     "'static'");
}

/* An address for a node or VM must be a usable host in the node network.
 * True when something was reported. */
static bool
check_host_ip(struct vctx *v, const char *ip, const char *path)
{
	struct network_config *n = &v->cfg->network;
	uint32_t a, gw = 0;

	if (!ip || !net_ipv4_parse(ip, &a) || n->prefix <= 0)
		return false;
	if (!net_in(a, n->net, n->prefix)) {
		verr(v, path, "'%s' is outside network '%s'", ip, n->cidr);
		return true;
	}
	if (n->prefix < 31 && a == n->net)
		verr(v, path, "'%s' is the network address of '%s'", ip, n->cidr);
	else if (n->prefix < 31 && a == (n->net | ~net_mask(n->prefix)))
		verr(v, path, "'%s' is the broadcast address of '%s'", ip, n->cidr);
	else if (n->gateway && net_ipv4_parse(n->gateway, &gw) && a == gw)
		verr(v, path, "'%s' is the gateway", ip);
	else
		return false;
	return true;
}

/* --- node pools --------------------------------------------------------- */

static bool
has_key_under(const struct config *cfg, const char *path, const char *key)
{
	char *p = xasprintf("%s.%s", path, key);
	bool r = has_key(cfg, p);

	free(p);
	return r;
}

/*
 * How many of a pool's allocated addresses fit between ip_start and the
 * last host of the network; -1 when all do (or there is nothing to say).
 * Reported once, by count, at ip_start.
 */
static int
pool_fit(struct vctx *v, const struct node_pool *pool, const char *ppath,
	 uint32_t start, int count)
{
	const struct network_config *n = &v->cfg->network;
	uint64_t last;
	int alloc = 0, over = 0, i, fit;
	char path[96];

	if (!pool->ip_start || !start || n->prefix <= 0 || n->prefix > 30 ||
	    !net_in(start, n->net, n->prefix))
		return -1;
	last = (uint64_t)(n->net | ~net_mask(n->prefix)) - 1;
	fit = start > last ? 0 : (int)(last - start + 1);
	/* A first address that is no host at all is its own error. */
	if (fit == 0)
		fit = 1;
	for (i = 0; i < count; i++) {
		if (pool->n_list && pool->list[i].ip)
			continue;   /* written out, not allocated */
		alloc++;
		if (i >= fit)
			over++;
	}
	if (!over)
		return -1;
	snprintf(path, sizeof(path), "%s.ip_start", ppath);
	verr(v, path,
	     "%d of %d node%s from '%s' do%s not fit in '%s': it has %d "
	     "address%s from there to its last host", over, alloc,
	     alloc == 1 ? "" : "s", pool->ip_start, over == 1 ? "es" : "",
	     n->cidr, fit, fit == 1 ? "" : "es");
	return fit;
}

static void
expand_pool(struct vctx *v, struct node_pool *pool, enum node_role role,
	    const char *pool_key, struct node *out, size_t *n_out)
{
	struct config *cfg = v->cfg;
	const char *what = role == ROLE_CONTROLPLANE ? "cp" : "w";
	char ppath[64];
	uint32_t start = 0;
	int count, i, fit;

	snprintf(ppath, sizeof(ppath), "nodes.%s", pool_key);
	if (pool->n_list > 0 && pool->count >= 0 &&
	    (size_t)pool->count != pool->n_list) {
		char cpath[80];

		snprintf(cpath, sizeof(cpath), "%s.count", ppath);
		verr(v, cpath, "count is %d but %zu node%s listed", pool->count,
		     pool->n_list, pool->n_list == 1 ? " is" : "s are");
	}
	count = pool->n_list ? (int)pool->n_list
			     : (pool->count >= 0 ? pool->count
						 : (role == ROLE_CONTROLPLANE ? 1 : 0));
	if (!pool->prefix)
		pool->prefix = xasprintf("%s-%s", cfg->name ? cfg->name : "node", what);
	if (!pool->cores)
		pool->cores = 2;
	if (!pool->memory_mib)
		pool->memory_mib = 4096;
	if (!pool->disk_gib)
		pool->disk_gib = role == ROLE_CONTROLPLANE ? 32 : 64;
	if (pool->ip_start)
		net_ipv4_parse(pool->ip_start, &start);
	fit = pool_fit(v, pool, ppath, start, count);
	for (i = 0; i < count; i++) {
		struct node *nd = &out[(*n_out)++];
		const struct node *src = pool->n_list ? &pool->list[i] : NULL;
		const struct str_list *pl = pool->placement.n ? &pool->placement
							      : &cfg->proxmox.nodes;
		char ipb[16];

		memset(nd, 0, sizeof(*nd));
		nd->role = role;
		nd->pool = xstrdup(pool_key);
		nd->path = src ? xasprintf("%s.nodes[%d]", ppath, i)
			       : xstrdup(ppath);
		nd->name = src && src->name ? xstrdup(src->name)
					    : xasprintf("%s-%d", pool->prefix, i + 1);
		if (src && src->ip) {
			nd->ip = xstrdup(src->ip);
			nd->ip_explicit = true;
		} else if (pool->ip_start && fit >= 0 && i >= fit) {
			/* Past the end of the network: reported once above. */
		} else if (pool->ip_start) {
			uint32_t a = start + (uint32_t)i;

			if (a < start) /* wrapped past 255.255.255.255 */
				a = 0;
			nd->ip = xstrdup(net_ipv4_str(a, ipb));
		} else if (cfg->platform == PLATFORM_VPS && cfg->vps.host) {
			nd->ip = xstrdup(cfg->vps.host);
		} else if ((src && has_key_under(cfg, nd->path, "ip")) ||
			   has_key_under(cfg, ppath, "ip_start")) {
			/* An address was written but is invalid: reported. */
		} else {
			verr(v, nd->path,
			     "node '%s' has no address: give it an ip, or set "
			     "ip_start on the pool", nd->name);
		}
		nd->mac = src && src->mac ? xstrdup(src->mac) : NULL;
		nd->vmid = src ? src->vmid : 0;
		nd->cores = src && src->cores ? src->cores : pool->cores;
		nd->memory_mib = src && src->memory_mib ? src->memory_mib
							: pool->memory_mib;
		nd->disk_gib = src && src->disk_gib ? src->disk_gib : pool->disk_gib;
		nd->install_disk = xstrdup(src && src->install_disk
						   ? src->install_disk
						   : (cfg->talos.install_disk
							      ? cfg->talos.install_disk
							      : "/dev/sda"));
		if (src && src->placement)
			nd->placement = xstrdup(src->placement);
		else if (pl->n)
			nd->placement = xstrdup(pl->v[(size_t)i % pl->n]);
		if (role == ROLE_CONTROLPLANE && nd->memory_mib < 2048)
			verr(v, src ? nd->path : ppath,
			     "node '%s': Talos control planes need at least "
			     "2 GiB of memory (%d MiB given)", nd->name,
			     nd->memory_mib);
		if (role == ROLE_WORKER && nd->memory_mib < 1024)
			verr(v, src ? nd->path : ppath,
			     "node '%s': Talos workers need at least 1 GiB of "
			     "memory (%d MiB given)", nd->name, nd->memory_mib);
	}
}

static void
check_nodes(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct str_list reported = { 0 };   /* pools with an ip_start error */
	size_t max, i;
	int ncp;

	/* An environment of plain VMs has no Talos cluster at all. */
	if (!has_key(cfg, "nodes")) {
		cfg->nodes = xcalloc(1, sizeof(*cfg->nodes));
		if (cfg->n_vms == 0)
			verr(v, NULL, "missing required key 'nodes'");
		return;
	}
	max = (cfg->cp_pool.n_list ? cfg->cp_pool.n_list
				   : (size_t)(cfg->cp_pool.count > 0 ? cfg->cp_pool.count : 1)) +
	      (cfg->worker_pool.n_list ? cfg->worker_pool.n_list
				       : (size_t)(cfg->worker_pool.count > 0
							  ? cfg->worker_pool.count : 0));
	cfg->nodes = xcalloc(max + 1, sizeof(*cfg->nodes));
	expand_pool(v, &cfg->cp_pool, ROLE_CONTROLPLANE, "controlplane",
		    cfg->nodes, &cfg->n_nodes);
	cfg->n_controlplanes = cfg->n_nodes;
	expand_pool(v, &cfg->worker_pool, ROLE_WORKER, "workers", cfg->nodes,
		    &cfg->n_nodes);
	ncp = (int)cfg->n_controlplanes;

	if (ncp == 0)
		verr(v, "nodes.controlplane",
		     "a cluster needs at least one control plane");
	if (ncp > 1 && ncp % 2 == 0)
		vwarn(v, "nodes.controlplane",
		      "%d control planes tolerate no more failures than %d; "
		      "etcd wants an odd number", ncp, ncp - 1);
	if (cfg->platform == PLATFORM_VPS && cfg->n_nodes > 1)
		verr(v, "nodes",
		     "platform 'vps' runs one node (a combined control plane "
		     "and worker); %zu are configured", cfg->n_nodes);
	for (i = 0; i < cfg->n_nodes; i++) {
		struct node *nd = &cfg->nodes[i];
		char path[128];

		if (nd->ip_explicit)
			snprintf(path, sizeof(path), "%s.ip", nd->path);
		else
			snprintf(path, sizeof(path), "nodes.%s.ip_start", nd->pool);
		/* One mistake at ip_start is one error, not one per node. */
		if (!nd->ip_explicit && strlist_has(&reported, nd->pool))
			;
		else if (nd->ip && strcmp(nd->ip, "0.0.0.0")) {
			if (check_host_ip(v, nd->ip, path) && !nd->ip_explicit)
				strlist_push(&reported, nd->pool);
		} else if (nd->ip) {
			verr(v, path, "address range runs past 255.255.255.255");
			strlist_push(&reported, nd->pool);
		}
		if (strlen(nd->name) > 63)
			verr(v, nd->path, "node name '%s' is longer than 63",
			     nd->name);
		if (cfg->platform == PLATFORM_PROXMOX && nd->placement &&
		    cfg->proxmox.nodes.n &&
		    !strlist_has(&cfg->proxmox.nodes, nd->placement))
			verr(v, nd->path,
			     "node '%s' is placed on '%s', which is not in "
			     "proxmox.nodes", nd->name, nd->placement);
		if (cfg->network.discovery == DISCOVERY_DHCP_LEASE && !nd->mac)
			verr(v, nd->path,
			     "node '%s' needs a static mac: network.discovery "
			     "is dhcp-lease", nd->name);
	}
	for (i = 0; i < reported.n; i++)
		free(reported.v[i]);
	free(reported.v);
	if (cfg->kubernetes.allow_scheduling_on_controlplanes == false &&
	    !has_key(cfg, "kubernetes.allow_scheduling_on_controlplanes"))
		cfg->kubernetes.allow_scheduling_on_controlplanes =
			cfg->n_nodes == cfg->n_controlplanes;
}

static void
check_vip(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct kubernetes_config *k = &cfg->kubernetes;
	size_t i;

	if (k->vip) {
		check_host_ip(v, k->vip, "kubernetes.vip");
		for (i = 0; i < cfg->n_nodes; i++)
			if (cfg->nodes[i].ip && !strcmp(cfg->nodes[i].ip, k->vip))
				verr(v, "kubernetes.vip",
				     "'%s' is also the address of node '%s'; the "
				     "VIP must be a free address", k->vip,
				     cfg->nodes[i].name);
		if (cfg->platform == PLATFORM_VPS)
			vwarn(v, "kubernetes.vip",
			      "a single VPS node has no use for a VIP");
	} else if (cfg->n_controlplanes > 1) {
		verr(v, "kubernetes",
		     "%zu control planes need a shared address: set "
		     "kubernetes.vip", cfg->n_controlplanes);
	}
	if (!k->endpoint) {
		const char *host = k->vip ? k->vip
					  : (cfg->n_nodes ? cfg->nodes[0].ip : NULL);

		if (host)
			k->endpoint = xasprintf("https://%s:6443", host);
	} else if (strncmp(k->endpoint, "https://", 8)) {
		verr(v, "kubernetes.endpoint", "'%s' must be an https:// URL",
		     k->endpoint);
	}
}

/* --- cloud-init VMs ----------------------------------------------------- */

/* What cloud-init and Ansible are handed: the image URL, the user, the
 * inventory's group names and vars. */
static void
check_vm_cloudinit(struct vctx *v, struct vm_config *vm, size_t i)
{
	char path[96];
	size_t j;

	snprintf(path, sizeof(path), "vms[%zu].image", i);
	if (vm->image && strncmp(vm->image, "https://", 8) &&
	    strncmp(vm->image, "http://", 7))
		verr(v, path, "'%s' is not an http(s) URL of a cloud image", vm->image);
	snprintf(path, sizeof(path), "vms[%zu].clone", i);
	if (vm->clone == VM_CLONE_LINKED && !vm->template_vmid)
		verr(v, path, "a linked clone needs 'template' (an imported image "
		     "has no base disk to share)");
	snprintf(path, sizeof(path), "vms[%zu].image_sha256", i);
	if (vm->image_sha256 && !vm->image)
		verr(v, path, "a checksum of an image, but the VM has no 'image' "
		     "(a template clone downloads nothing)");
	if (vm->image_sha256 && (strlen(vm->image_sha256) != 64 ||
				 strspn(vm->image_sha256, "0123456789abcdefABCDEF") != 64))
		verr(v, path, "'%s' is not a SHA-256 (64 hex digits)", vm->image_sha256);
	for (j = 0; vm->image && vm->image_sha256 && j < i; j++)
		if (v->cfg->vms[j].image && !strcmp(v->cfg->vms[j].image, vm->image) &&
		    v->cfg->vms[j].image_sha256 &&
		    strcasecmp(v->cfg->vms[j].image_sha256, vm->image_sha256))
			verr(v, path, "vms[%zu] gives another SHA-256 for the same "
			     "image (it is downloaded once)", j);
	for (j = 0; j < vm->search_domains.n; j++) {
		const char *d = vm->search_domains.v[j];

		snprintf(path, sizeof(path), "vms[%zu].search_domains[%zu]", i, j);
		if (!*d || strlen(d) > 253 ||
		    strspn(d, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != strlen(d) ||
		    d[0] == '.' || d[0] == '-')
			verr(v, path, "'%s' is not a DNS domain name", d);
	}
	if (!vm->mac)
		vwarn(v, vm->path, "no mac: the cloud-init network config matches "
		      "the NIC by name, which only netplan images (Ubuntu) apply; "
		      "give 'mac' (the VM's net0 MAC) for Debian and other images");
	snprintf(path, sizeof(path), "vms[%zu].user", i);
	if (vm->user && (!*vm->user || strspn(vm->user, "abcdefghijklmnopqrstuvwxyz"
					      "0123456789_-") != strlen(vm->user) ||
			 !strchr("abcdefghijklmnopqrstuvwxyz_", vm->user[0]) ||
			 strlen(vm->user) > 32))
		verr(v, path, "'%s' is not a login name (lower case letters, "
		     "digits, '_' and '-', starting with a letter)", vm->user);
	for (j = 0; j < vm->groups.n; j++) {
		const char *g = vm->groups.v[j];

		snprintf(path, sizeof(path), "vms[%zu].ansible.groups[%zu]", i, j);
		if (!*g || strspn(g, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "0123456789_") != strlen(g) || isdigit((unsigned char)g[0]))
			verr(v, path, "'%s' is not an Ansible group name (letters, "
			     "digits and '_', not starting with a digit)", g);
		else if (!strcmp(g, "all") || !strcmp(g, "ungrouped"))
			verr(v, path, "'%s' is Ansible's own group; pick another name", g);
	}
	for (j = 0; j < vm->n_vars; j++) {
		const char *k = vm->vars[j].key, *val = vm->vars[j].value;

		snprintf(path, sizeof(path), "vms[%zu].ansible.vars", i);
		if (!strncmp(k, "ansible_host", 12) || !strcmp(k, "ansible_user"))
			verr(v, path, "'%s' comes from the VM's ip and user; "
			     "remove it from vars", k);
		if (strstr(val, "${") || !strncmp(val, "file:", 5))
			verr(v, path, "'%s' looks like a secret reference: the "
			     "inventory is written in clear, so give Ansible a "
			     "Vault reference instead (for example "
			     "\"{{ vault_%s }}\" with the value in a vault file)", k, k);
	}
}

static void
check_vms(struct vctx *v)
{
	struct config *cfg = v->cfg;
	size_t i, j;

	for (i = 0; i < cfg->n_vms; i++) {
		struct vm_config *vm = &cfg->vms[i];
		char path[96];

		vm->path = xasprintf("vms[%zu]", i);
		if (vm->template_vmid && vm->template_vmid >= cfg->proxmox.vmid_base &&
		    vm->template_vmid < cfg->proxmox.vmid_base + cfg->proxmox.vmid_count) {
			snprintf(path, sizeof(path), "vms[%zu].template", i);
			verr(v, path, "template %d is inside this env's VM id range "
			     "%d..%d, which strata owns; give the template an id "
			     "outside it", vm->template_vmid, cfg->proxmox.vmid_base,
			     cfg->proxmox.vmid_base + cfg->proxmox.vmid_count - 1);
		}
		if (!vm->name)
			verr(v, vm->path, "missing required key 'name'");
		if (!vm->template_vmid == !vm->image)
			verr(v, vm->path,
			     "give exactly one of 'template' (a VM id to clone) "
			     "or 'image' (a cloud image URL)");
		if (!vm->ip) {
			verr(v, vm->path, "missing required key 'ip'");
		} else {
			snprintf(path, sizeof(path), "vms[%zu].ip", i);
			check_host_ip(v, vm->ip, path);
		}
		if (!vm->cores)
			vm->cores = 2;
		if (!vm->memory_mib)
			vm->memory_mib = 2048;
		if (!vm->disk_gib)
			vm->disk_gib = 20;
		set_default(&vm->user, "debian");
		if (!vm->ssh_keys.n)
			vwarn(v, vm->path,
			      "no ssh_keys: Ansible will not be able to log in");
		for (j = 0; j < vm->ssh_keys.n; j++) {
			const char *k = vm->ssh_keys.v[j];

			char why[128];

			snprintf(path, sizeof(path), "vms[%zu].ssh_keys[%zu]", i, j);
			if (strncmp(k, "ssh-", 4) && strncmp(k, "ecdsa-", 6) &&
			    strncmp(k, "sk-", 3))
				verr(v, path, "not an SSH public key (ssh-ed25519 AAAA...)");
			else if (ci_ssh_key_check(k, why, sizeof(why)) < 0)
				verr(v, path, "not an SSH public key: %s", why);
		}
		check_vm_cloudinit(v, vm, i);
		if (!vm->placement && cfg->proxmox.nodes.n)
			vm->placement = xstrdup(cfg->proxmox.nodes.v[i % cfg->proxmox.nodes.n]);
		else if (vm->placement && cfg->proxmox.nodes.n &&
			 !strlist_has(&cfg->proxmox.nodes, vm->placement)) {
			snprintf(path, sizeof(path), "vms[%zu].placement", i);
			verr(v, path, "'%s' is not in proxmox.nodes", vm->placement);
		}
	}
}

/* --- uniqueness and VM ids ---------------------------------------------- */

struct ident {
	const char *name, *ip, *mac, *path;
	int *vmid;
};

static void
check_unique(struct vctx *v)
{
	struct config *cfg = v->cfg;
	size_t n = cfg->n_nodes + cfg->n_vms, i, j;
	struct ident *id = xcalloc(n + 1, sizeof(*id));
	int base = cfg->proxmox.vmid_base, count = cfg->proxmox.vmid_count;
	int next = base;

	for (i = 0; i < cfg->n_nodes; i++) {
		id[i].name = cfg->nodes[i].name;
		id[i].ip = cfg->nodes[i].ip;
		id[i].mac = cfg->nodes[i].mac;
		id[i].path = cfg->nodes[i].path;
		id[i].vmid = &cfg->nodes[i].vmid;
	}
	for (i = 0; i < cfg->n_vms; i++) {
		struct ident *d = &id[cfg->n_nodes + i];

		d->name = cfg->vms[i].name;
		d->ip = cfg->vms[i].ip;
		d->mac = cfg->vms[i].mac;
		d->path = cfg->vms[i].path;
		d->vmid = &cfg->vms[i].vmid;
	}
	for (i = 0; i < n; i++) {
		for (j = 0; j < i; j++) {
			if (id[i].name && id[j].name && !strcmp(id[i].name, id[j].name))
				verr(v, id[i].path, "name '%s' is already used by %s",
				     id[i].name, id[j].path);
			if (id[i].ip && id[j].ip && !strcmp(id[i].ip, id[j].ip))
				verr(v, id[i].path,
				     "address '%s' is already used by '%s'",
				     id[i].ip, id[j].name ? id[j].name : id[j].path);
			if (id[i].mac && id[j].mac && !strcmp(id[i].mac, id[j].mac))
				verr(v, id[i].path, "mac '%s' is already used by '%s'",
				     id[i].mac, id[j].name ? id[j].name : id[j].path);
			if (*id[i].vmid && *id[i].vmid == *id[j].vmid)
				verr(v, id[i].path, "vmid %d is already used by '%s'",
				     *id[i].vmid, id[j].name ? id[j].name : id[j].path);
		}
	}
	if (cfg->platform != PLATFORM_PROXMOX || !base)
		goto out;
	for (i = 0; i < cfg->n_nodes; i++)
		cfg->nodes[i].vmid_explicit = cfg->nodes[i].vmid != 0;
	for (i = 0; i < cfg->n_vms; i++)
		cfg->vms[i].vmid_explicit = cfg->vms[i].vmid != 0;
	for (i = 0; i < n; i++) {
		int vid = *id[i].vmid;

		if (vid && (vid < base || vid >= base + count))
			verr(v, id[i].path,
			     "vmid %d is outside this environment's range %d..%d",
			     vid, base, base + count - 1);
	}
	/* Allocate ids for the rest, skipping ones written explicitly. */
	for (i = 0; i < n; i++) {
		if (*id[i].vmid)
			continue;
		for (;;) {
			bool taken = false;

			for (j = 0; j < n; j++)
				if (*id[j].vmid == next)
					taken = true;
			if (!taken)
				break;
			next++;
		}
		if (next >= base + count) {
			verr(v, "proxmox.vmid",
			     "range %d..%d has room for %d VMs but %zu are "
			     "configured", base, base + count - 1, count, n);
			break;
		}
		*id[i].vmid = next++;
	}
out:
	free(id);
}

/* --- gitops, components ------------------------------------------------- */

/* Does a Talos patch mount Longhorn's data path into the kubelet? */
static bool
longhorn_mount_given(const struct config *cfg)
{
	const struct talos_config *t = &cfg->talos;
	bool found = false;

	for (size_t i = 0; i < t->n_patches && !found; i++) {
		if (t->patches[i].inline_yaml) {
			found = strstr(t->patches[i].inline_yaml, "/var/lib/longhorn");
		} else if (t->patches[i].file && cfg->dir) {
			char *path = fs_join(cfg->dir, t->patches[i].file);
			struct buf b = BUF_INIT;
			struct err e = ERR_INIT;

			found = fs_read_file(&b, path, 1 << 20, &e) == 0 &&
				strstr(b.ptr, "/var/lib/longhorn");
			buf_release(&b);
			free(path);
		}
	}
	return found;
}

/*
 * Would the checkout at local_path (relative to the env folder) contain
 * the env folder itself, and so its secrets (sops.agekey, secrets.yaml)?
 * Lexical: ".." climbs, "." stays; symlinks are not followed.
 */
static bool
checkout_holds_env(const char *env_dir, const char *local_path)
{
	char *env = env_dir ? realpath(env_dir, NULL) : NULL;
	struct buf p = BUF_INIT;
	bool holds = false;

	if (!env)
		return false;
	if (local_path[0] != '/')
		buf_adds(&p, env);
	for (const char *c = local_path; *c;) {
		size_t n = strcspn(c, "/");

		if (n == 2 && !strncmp(c, "..", 2)) {
			char *slash = strrchr(p.ptr, '/');
			p.len = slash ? (size_t)(slash - p.ptr) : 0;
			p.ptr[p.len] = '\0';
		} else if (n && !(n == 1 && c[0] == '.')) {
			buf_addch(&p, '/');
			buf_add(&p, c, n);
		}
		c += n + (c[n] == '/');
	}
	holds = p.len == 0 || (!strncmp(env, p.ptr, p.len) &&
			       (env[p.len] == '/' || env[p.len] == '\0'));
	buf_release(&p);
	free(env);
	return holds;
}

/* The keys the GitOps tree (src/gitops) reads: defaults and limits. */
static void
check_gitops_tree(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct gitops_config *g = &cfg->gitops;
	struct components_config *c = &cfg->components;
	int workers = (int)(cfg->n_nodes - cfg->n_controlplanes);
	size_t i;

	if (g->enabled) {
		set_default(&g->local_path, "gitops");
		if (checkout_holds_env(cfg->dir, g->local_path))
			verr(v, "gitops.local_path",
			     "'%s' holds the env folder: its secrets (sops.agekey, "
			     "secrets.yaml) would be pushed with the tree; use a "
			     "folder inside it or beside it", g->local_path);
		if (g->sops_identity.kind != SECRET_NONE)
			check_secret(v, &g->sops_identity, "gitops.sops.identity", false);
		for (i = 0; i < g->sops_recipients.n; i++) {
			char path[64];

			snprintf(path, sizeof(path), "gitops.sops.recipients[%zu]", i);
			if (age_recipient_check(g->sops_recipients.v[i]) < 0)
				verr(v, path, "'%s' is not an age recipient (age1...)",
				     g->sops_recipients.v[i]);
		}
	}
	if (!g->enabled && has_key(cfg, "components"))
		vwarn(v, "components",
		      "nothing installs these without gitops: the platform layer "
		      "is reconciled by Flux from the tree strata gen writes");
	if (!c->replicas)
		c->replicas = cfg->n_controlplanes >= 3 ? 3 : 1;
	else if (c->replicas > 1 && workers >= 0 && c->replicas > workers &&
		 !cfg->kubernetes.allow_scheduling_on_controlplanes)
		vwarn(v, "components.replicas",
		      "%d replicas but %d worker%s: some stay Pending or share a node",
		      c->replicas, workers, workers == 1 ? "" : "s");
	if (c->longhorn) {
		bool given = c->longhorn_replicas != 0;
		/* Volumes live where pods run: the workers, or the control
		 * planes of a cluster without workers. */
		int hosts = workers > 0 ? workers
			    : cfg->kubernetes.allow_scheduling_on_controlplanes
				    ? (int)cfg->n_controlplanes : 0;

		if (!given)
			c->longhorn_replicas = hosts >= 2 || hosts == 0 ? 2 : 1;
		if (c->longhorn_replicas > hosts && hosts > 0)
			verr(v, given ? "components.storage.longhorn_replicas"
				      : "components.storage.longhorn",
			     "%d Longhorn replicas need %d %s, the cluster has %d",
			     c->longhorn_replicas, c->longhorn_replicas,
			     workers > 0 ? "workers" : "nodes", hosts);
		if (!longhorn_mount_given(cfg))
			vwarn(v, "components.storage.longhorn",
			      "Longhorn needs the kubelet to see /var/lib/longhorn "
			      "with rshared propagation: add that bind mount to "
			      "machine.kubelet.extraMounts in talos.patches (see "
			      "examples/prox-n100/patches/longhorn-mounts.yaml)");
	} else if (c->longhorn_replicas) {
		verr(v, "components.storage.longhorn_replicas",
		     "set without components.storage.longhorn");
	}
	if (c->metrics_server)
		vwarn(v, "components.metrics_server",
		      "metrics-server verifies the kubelets' serving certificates: "
		      "Talos kubelets need rotate-server-certificates (talos.patches) "
		      "and an approver for their CSRs, or it reports no metrics");
}


/* Cilium's Gateway API runs on its kube-proxy replacement, which on
 * Talos reaches the API through KubePrism (FACTS §1): the cni must be
 * cilium, and the user's values must not turn either off. */
static void
check_gateway(struct vctx *v, struct config *cfg)
{
	const struct kubernetes_config *k = &cfg->kubernetes;
	json_t *u, *x;

	if (k->cni != CNI_CILIUM) {
		verr(v, "components.ingress",
		     "'gateway' is the Gateway API through Cilium; set "
		     "kubernetes.cni.name: cilium or pick nginx or none");
		return;
	}
	if (!k->cni_values || !(u = json_loads(k->cni_values, 0, NULL)))
		return;
	x = json_object_get(u, "kubeProxyReplacement");
	if (x && (json_is_false(x) ||
		  (json_is_string(x) && strcmp(json_string_value(x), "true"))))
		verr(v, "kubernetes.cni.values",
		     "kubeProxyReplacement must stay true with components.ingress: "
		     "gateway (Cilium's Gateway API needs its kube-proxy "
		     "replacement); remove the key");
	if (json_object_get(u, "k8sServiceHost") ||
	    json_object_get(u, "k8sServicePort"))
		verr(v, "kubernetes.cni.values",
		     "k8sServiceHost/k8sServicePort must stay localhost:7445 "
		     "(KubePrism) with components.ingress: gateway; remove them");
	x = json_object_get(json_object_get(u, "gatewayAPI"), "enabled");
	if (x && !json_is_true(x))
		verr(v, "kubernetes.cni.values",
		     "gatewayAPI.enabled is false but components.ingress is "
		     "gateway; remove the key or pick another ingress");
	json_decref(u);
}

static void
check_addons(struct vctx *v)
{
	struct config *cfg = v->cfg;
	struct gitops_config *g = &cfg->gitops;
	struct components_config *c = &cfg->components;

	if (has_key(cfg, "gitops")) {
		g->enabled = true;
		if (!g->repo)
			verr(v, "gitops", "missing required key 'repo'");
		else if (!strncmp(g->repo, "http://", 7))
			vwarn(v, "gitops.repo",
			      "plain http: the cluster's source of truth travels "
			      "unauthenticated");
		else if (!strncmp(g->repo, "git@", 4))
			verr(v, "gitops.repo",
			     "Flux takes ssh://user@host/path, not the scp form "
			     "'%s'", g->repo);
		else if (!strncmp(g->repo, "ssh://", 6) && !g->known_hosts)
			verr(v, "gitops",
			     "missing 'known_hosts' for an ssh:// repo (the Git "
			     "server's host keys, e.g. from ssh-keyscan)");
		set_default(&g->branch, "main");
		set_default(&g->path, "cluster/kubernetes");
		set_default(&g->interval, "5m");
		if (g->token.kind != SECRET_NONE)
			check_secret(v, &g->token, "gitops.token", false);
	}
	if ((c->nfs_server != NULL) != (c->nfs_path != NULL))
		verr(v, "components.storage.nfs",
		     "give both 'server' and 'path'");
	c->nfs = c->nfs_server && c->nfs_path;
	if (c->ingress && strcmp(c->ingress, "nginx") && strcmp(c->ingress, "none") &&
	    strcmp(c->ingress, "gateway"))
		verr(v, "components.ingress", "'%s' is not one of gateway, nginx, none",
		     c->ingress);
	else if (c->ingress && !strcmp(c->ingress, "gateway"))
		check_gateway(v, cfg);
	else if (c->ingress && !strcmp(c->ingress, "nginx"))
		vwarn(v, "components.ingress",
		      "ingress-nginx is retired upstream (maintenance ended March "
		      "2026; 4.15.1 is its last release) and gets no more fixes; "
		      "its successor is the Gateway API through Cilium");
	if (c->ingress && !strcmp(c->ingress, "none")) {
		free(c->ingress);
		c->ingress = NULL;
	}
	if (c->tunnel && strcmp(c->tunnel, "cloudflared"))
		verr(v, "components.tunnel.provider",
		     "'%s' is not one of cloudflared", c->tunnel);
	if (c->tunnel)
		check_secret(v, &c->tunnel_token, "components.tunnel.token", true);
	else if (c->tunnel_token.kind != SECRET_NONE)
		verr(v, "components.tunnel", "a token without a provider");
	check_gitops_tree(v);
}

/* --- VM id ranges of sibling environments ------------------------------- */

static char *
endpoint_host(const char *url)
{
	const char *h = strstr(url, "://");
	size_t n;

	h = h ? h + 3 : url;
	n = strcspn(h, ":/");
	return xstrndup(h, n);
}

static void
check_siblings(struct vctx *v)
{
	struct config *cfg = v->cfg;
	char *parent, *self_real, *host;
	DIR *d;
	struct dirent *de;
	int base = cfg->proxmox.vmid_base, end = base + cfg->proxmox.vmid_count;

	if (cfg->platform != PLATFORM_PROXMOX || !base || !cfg->proxmox.endpoint)
		return;
	parent = fs_join(cfg->dir, "..");
	self_real = realpath(cfg->dir, NULL);
	host = endpoint_host(cfg->proxmox.endpoint);
	d = opendir(parent);
	while (d && (de = readdir(d))) {
		struct diag scratch;
		struct config *o = NULL;
		char *dir, *file, *real;

		if (de->d_name[0] == '.')
			continue;
		dir = fs_join(parent, de->d_name);
		file = fs_join(dir, "config.yml");
		real = realpath(dir, NULL);
		if (fs_exists(file) && real && self_real && strcmp(real, self_real)) {
			diag_init(&scratch, file);
			config_load_opts(&o, file, &scratch, CONFIG_NO_SIBLINGS);
			if (o && o->platform == PLATFORM_PROXMOX &&
			    o->proxmox.vmid_base && o->proxmox.endpoint) {
				char *oh = endpoint_host(o->proxmox.endpoint);
				int ob = o->proxmox.vmid_base;
				int oe = ob + o->proxmox.vmid_count;

				if (!strcmp(oh, host) && ob < end && base < oe)
					verr(v, "proxmox.vmid.base",
					     "VM id range %d..%d overlaps "
					     "environment '%s' (%d..%d in %s)",
					     base, end - 1,
					     o->name ? o->name : de->d_name, ob,
					     oe - 1, file);
				free(oh);
			}
			config_free(o);
			diag_release(&scratch);
		}
		free(real);
		free(file);
		free(dir);
	}
	if (d)
		closedir(d);
	free(host);
	free(self_real);
	free(parent);
}

/*
 * gen writes patches/NODE.yaml and nodes/NODE.yaml: a talos patch file of
 * the user's at one of those paths would be overwritten by the first gen.
 */
static void
check_patch_names(struct vctx *v)
{
	struct config *cfg = v->cfg;
	size_t i, j;

	for (i = 0; i < cfg->talos.n_patches; i++) {
		const struct talos_patch *p = &cfg->talos.patches[i];
		const char *f = p->file;

		if (!f)
			continue;
		if (!strncmp(f, "./", 2))
			f += 2;
		for (j = 0; j < cfg->n_nodes; j++) {
			const char *name = cfg->nodes[j].name;
			size_t n = strlen(name);
			const char *rest = !strncmp(f, "patches/", 8) ? f + 8
					   : !strncmp(f, "nodes/", 6) ? f + 6 : NULL;

			if (rest && !strncmp(rest, name, n) &&
			    !strcmp(rest + n, ".yaml"))
				diag_add(v->diag, DIAG_ERROR, p->line, p->col, NULL,
					 "talos.patches[%zu]: '%s' is the file gen "
					 "writes for node '%s' and would be "
					 "overwritten; give your patch another name",
					 i, p->file, name);
		}
	}
}

static void
check_backup(struct vctx *v)
{
	struct backup_config *b = &v->cfg->backup;
	size_t i;

	for (i = 0; i < b->recipients.n; i++) {
		char path[64];

		snprintf(path, sizeof(path), "backup.recipients[%zu]", i);
		if (age_recipient_check(b->recipients.v[i]) < 0)
			verr(v, path, "'%s' is not an age recipient (age1..., as "
			     "age-keygen prints it)", b->recipients.v[i]);
	}
	if (b->passphrase.kind != SECRET_NONE) {
		check_secret(v, &b->passphrase, "backup.passphrase", false);
		if (b->recipients.n)
			verr(v, "backup.passphrase", "set together with "
			     "backup.recipients; an age file holds recipients or "
			     "one passphrase: keep one");
	}
}

void
config_validate(struct config *cfg, struct diag *diag, unsigned flags)
{
	struct vctx v = { cfg, diag, flags };

	check_platform_sections(&v);
	/* A missing or misplaced section was reported just above. */
	if (cfg->platform == PLATFORM_PROXMOX && is_mapping(cfg, "proxmox"))
		check_proxmox(&v);
	else if (cfg->platform == PLATFORM_VPS && is_mapping(cfg, "vps"))
		check_vps(&v);
	check_network(&v);
	check_talos(&v);
	check_nodes(&v);
	check_patch_names(&v);
	check_kubernetes(&v);
	check_vip(&v);
	check_vms(&v);
	check_unique(&v);
	check_addons(&v);
	config_check_firewall(cfg, diag);
	check_backup(&v);
	if (!(flags & CONFIG_NO_SIBLINGS))
		check_siblings(&v);
}
