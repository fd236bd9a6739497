#include "provider/proxmox/cloudinit.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <libfyaml.h>
#include <openssl/evp.h>

#include "config/config.h"
#include "talos/tyaml.h"
#include "util/fs.h"
#include "util/iso.h"

const char *const ci_base_packages[] = { "qemu-guest-agent", "python3", NULL };

/* --- SSH public keys ---------------------------------------------------- */

int
ci_ssh_key_check(const char *key, char *why, size_t whylen)
{
	const char *sp, *b64, *end;
	unsigned char *blob = NULL;
	size_t tlen, blen, pad = 0;
	uint32_t n;
	int dlen, r = -1;

	if (!(sp = strchr(key, ' ')) || sp == key) {
		snprintf(why, whylen, "not 'TYPE BASE64 [COMMENT]'");
		return -1;
	}
	tlen = (size_t)(sp - key);
	b64 = sp + 1;
	end = b64 + strcspn(b64, " \t");
	blen = (size_t)(end - b64);
	if (blen < 8 || blen % 4 || blen > 65536 ||
	    strspn(b64, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789+/=") < blen) {
		snprintf(why, whylen, "the key data is not base64");
		return -1;
	}
	while (pad < 2 && b64[blen - 1 - pad] == '=')
		pad++;
	blob = malloc(blen / 4 * 3 + 1);
	if (!blob)
		abort();
	dlen = EVP_DecodeBlock(blob, (const unsigned char *)b64, (int)blen);
	if (dlen < 0) {
		snprintf(why, whylen, "the key data is not base64");
		goto out;
	}
	dlen -= (int)pad;
	if (dlen < 4) {
		snprintf(why, whylen, "the key data is too short to be a key");
		goto out;
	}
	n = (uint32_t)blob[0] << 24 | (uint32_t)blob[1] << 16 |
	    (uint32_t)blob[2] << 8 | blob[3];
	if (n != tlen || (size_t)dlen < 4 + tlen || memcmp(blob + 4, key, tlen)) {
		snprintf(why, whylen, "the key data does not hold a '%.*s' key",
			 (int)(tlen > 40 ? 40 : tlen), key);
		goto out;
	}
	/* The blob is a run of length-prefixed strings that ends exactly at
	 * its end (RFC 4253 §6.6, RFC 8709): the type, then the key. */
	{
		size_t off = 0, nstr = 0, last = 0;

		while (off + 4 <= (size_t)dlen) {
			n = (uint32_t)blob[off] << 24 | (uint32_t)blob[off + 1] << 16 |
			    (uint32_t)blob[off + 2] << 8 | blob[off + 3];
			if (n > (size_t)dlen - off - 4)
				break;
			off += 4 + n;
			last = n;
			nstr++;
		}
		if (off != (size_t)dlen || nstr < 2 ||
		    (tlen == 11 && !memcmp(key, "ssh-ed25519", 11) &&
		     (nstr != 2 || last != 32))) {
			snprintf(why, whylen, "the key data is cut short or damaged "
				 "(copy the whole line of the .pub file)");
			goto out;
		}
	}
	r = 0;
out:
	free(blob);
	return r;
}

void
ci_sshkeys_encode(struct buf *out, const struct str_list *keys)
{
	size_t i;
	const char *p;

	for (i = 0; i < keys->n; i++) {
		for (p = keys->v[i]; *p; p++) {
			unsigned char c = (unsigned char)*p;

			if (isalnum(c) || strchr("-_.!~*'()", c))
				buf_addch(out, (char)c);
			else
				buf_addf(out, "%%%02X", c);
		}
		buf_adds(out, "%0A");
	}
}

void
ci_ipconfig(struct buf *out, const char *ip, int prefix, const char *gw)
{
	buf_addf(out, "ip=%s/%d", ip, prefix);
	if (gw)
		buf_addf(out, ",gw=%s", gw);
}

/* --- the seed ----------------------------------------------------------- */

static int
emit(struct buf *out, struct fy_document *doc, const char *head,
     const char *what, struct err *err)
{
	char *text = fy_emit_document_to_string(doc, FYECF_MODE_BLOCK |
						     FYECF_INDENT_2 |
						     FYECF_WIDTH_INF);

	if (!text)
		return err_set(err, ERR_FAIL, "cannot write the %s", what);
	if (head)
		buf_adds(out, head);
	buf_adds(out, text);
	free(text);
	return 0;
}

static bool
has_str(const struct str_list *l, const char *s)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (!strcmp(l->v[i], s))
			return true;
	return false;
}

static int
user_data(struct buf *out, const struct vm_config *vm, struct err *err)
{
	struct fy_document *doc = fy_document_create(NULL);
	struct fy_node *root, *users, *u, *keys, *pkgs, *run, *cmd;
	size_t i;
	int r;

	if (!doc)
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_puts(root, "hostname", vm->name);
	y_put(root, "manage_etc_hosts", fy_node_build_from_string(doc, "true", 4));
	users = y_seq(doc);
	u = y_map(doc);
	y_puts(u, "name", vm->user);
	y_puts(u, "shell", "/bin/bash");
	y_puts(u, "sudo", "ALL=(ALL) NOPASSWD:ALL");
	y_put(u, "lock_passwd", fy_node_build_from_string(doc, "true", 4));
	keys = y_seq(doc);
	for (i = 0; i < vm->ssh_keys.n; i++)
		fy_node_sequence_append(keys, y_str(doc, vm->ssh_keys.v[i]));
	y_put(u, "ssh_authorized_keys", keys);
	fy_node_sequence_append(users, u);
	y_put(root, "users", users);
	y_put(root, "ssh_pwauth", fy_node_build_from_string(doc, "false", 5));
	y_put(root, "package_update", fy_node_build_from_string(doc, "true", 4));
	pkgs = y_seq(doc);
	for (i = 0; ci_base_packages[i]; i++)
		if (!has_str(&vm->packages, ci_base_packages[i]))
			fy_node_sequence_append(pkgs, y_str(doc, ci_base_packages[i]));
	for (i = 0; i < vm->packages.n; i++)
		fy_node_sequence_append(pkgs, y_str(doc, vm->packages.v[i]));
	y_put(root, "packages", pkgs);
	/* Installing the agent does not start it on Debian/Ubuntu images. */
	run = y_seq(doc);
	cmd = y_seq(doc);
	fy_node_sequence_append(cmd, y_str(doc, "systemctl"));
	fy_node_sequence_append(cmd, y_str(doc, "enable"));
	fy_node_sequence_append(cmd, y_str(doc, "--now"));
	fy_node_sequence_append(cmd, y_str(doc, "qemu-guest-agent"));
	fy_node_sequence_append(run, cmd);
	y_put(root, "runcmd", run);
	r = emit(out, doc, "#cloud-config\n", "cloud-init user-data", err);
	fy_document_destroy(doc);
	return r;
}

static int
network_config(struct buf *out, const struct config *cfg,
	       const struct vm_config *vm, struct err *err)
{
	struct fy_document *doc = fy_document_create(NULL);
	struct fy_node *root, *eths, *eth, *match, *addrs, *routes, *rt, *ns, *nsa;
	char *a;
	size_t i;
	int r;

	if (!doc)
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_put(root, "version", fy_node_build_from_string(doc, "2", 1));
	eths = y_map(doc);
	eth = y_map(doc);
	match = y_map(doc);
	/* With the MAC the NIC is matched by it and named eth0, which every
	 * renderer cloud-init has applies (as Proxmox's own v1 config does).
	 * Without it, by name: images call it eth0 or ens18, and only netplan
	 * (Ubuntu) applies a glob; eni and networkd would take the id "nic0"
	 * for the device's name (validate warns). */
	if (vm->mac) {
		char lower[18];
		size_t k;

		for (k = 0; k < sizeof(lower) - 1 && vm->mac[k]; k++)
			lower[k] = (char)tolower((unsigned char)vm->mac[k]);
		lower[k] = 0;
		y_puts(match, "macaddress", lower);
		y_put(eth, "match", match);
		y_puts(eth, "set-name", "eth0");
	} else {
		y_puts(match, "name", "e*");
		y_put(eth, "match", match);
	}
	addrs = y_seq(doc);
	a = xasprintf("%s/%d", vm->ip, cfg->network.prefix);
	fy_node_sequence_append(addrs, y_str(doc, a));
	free(a);
	y_put(eth, "addresses", addrs);
	if (cfg->network.gateway) {
		routes = y_seq(doc);
		rt = y_map(doc);
		/* "default" is netplan-only: cloud-init 22.4 cannot render it
		 * for eni or networkd (Debian images); 0.0.0.0/0 works for all. */
		y_puts(rt, "to", "0.0.0.0/0");
		y_puts(rt, "via", cfg->network.gateway);
		fy_node_sequence_append(routes, rt);
		y_put(eth, "routes", routes);
	}
	if (cfg->network.nameservers.n || vm->search_domains.n) {
		ns = y_map(doc);
		if (cfg->network.nameservers.n) {
			nsa = y_seq(doc);
			for (i = 0; i < cfg->network.nameservers.n; i++)
				fy_node_sequence_append(nsa, y_str(doc, cfg->network.nameservers.v[i]));
			y_put(ns, "addresses", nsa);
		}
		if (vm->search_domains.n) {
			nsa = y_seq(doc);
			for (i = 0; i < vm->search_domains.n; i++)
				fy_node_sequence_append(nsa, y_str(doc, vm->search_domains.v[i]));
			y_put(ns, "search", nsa);
		}
		y_put(eth, "nameservers", ns);
	}
	y_put(eths, vm->mac ? "eth0" : "nic0", eth);
	y_put(root, "ethernets", eths);
	r = emit(out, doc, NULL, "cloud-init network-config", err);
	fy_document_destroy(doc);
	return r;
}

/* meta-data: instance-id from user-data and network-config (as Proxmox
 * derives it, FACTS-cloudinit.md §2), so a changed seed is a new instance
 * and cloud-init runs again; local-hostname for images that read it. */
static int
meta_data(struct buf *out, const struct ci_seed *s, const struct vm_config *vm,
	  struct err *err)
{
	struct fy_document *doc = fy_document_create(NULL);
	struct fy_node *root;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	int r;

	if (!doc || !c)
		abort();
	if (EVP_DigestInit_ex(c, EVP_sha1(), NULL) != 1 ||
	    EVP_DigestUpdate(c, s->user_data.ptr, s->user_data.len) != 1 ||
	    EVP_DigestUpdate(c, s->network_config.ptr, s->network_config.len) != 1 ||
	    EVP_DigestFinal_ex(c, md, &mdlen) != 1) {
		EVP_MD_CTX_free(c);
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "cannot hash the cloud-init seed "
			       "(is OpenSSL's default provider available?)");
	}
	EVP_MD_CTX_free(c);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_puts(root, "instance-id", hex);
	y_puts(root, "local-hostname", vm->name);
	r = emit(out, doc, NULL, "cloud-init meta-data", err);
	fy_document_destroy(doc);
	return r;
}

int
ci_seed_make(struct ci_seed *out, const struct config *cfg,
	     const struct vm_config *vm, struct err *err)
{
	if (user_data(&out->user_data, vm, err) < 0 ||
	    network_config(&out->network_config, cfg, vm, err) < 0 ||
	    meta_data(&out->meta_data, out, vm, err) < 0)
		return err_wrap(err, "cloud-init seed for vm '%s'", vm->name);
	return 0;
}

void
ci_seed_release(struct ci_seed *s)
{
	buf_release(&s->user_data);
	buf_release(&s->network_config);
	buf_release(&s->meta_data);
}

int
ci_seed_iso(struct buf *out, const struct ci_seed *s, struct err *err)
{
	struct iso_file f[] = {
		{ "user-data", s->user_data.ptr, s->user_data.len },
		{ "meta-data", s->meta_data.ptr, s->meta_data.len },
		{ "network-config", s->network_config.ptr, s->network_config.len },
	};

	return iso_build(out, CI_SEED_LABEL, f, sizeof(f) / sizeof(f[0]), err);
}

static int
write_one(const char *dir, const char *name, const char *file, const void *p,
	  size_t len, int *changed, int *total, struct err *err)
{
	char *rel = xasprintf("vms/%s/%s", name, file), *path = fs_join(dir, rel);
	bool ch = false;
	int r = fs_write_if_changed(path, p, len, 0600, &ch, err);

	if (r < 0)
		err_wrap(err, "write %s", rel);
	*changed += ch;
	*total += 1;
	free(rel);
	free(path);
	return r;
}

int
ci_seeds_write(const struct config *cfg, const char *dir, int *changed,
	       int *total, struct err *err)
{
	size_t i;
	int r = 0;

	for (i = 0; i < cfg->n_vms && r == 0; i++) {
		const struct vm_config *vm = &cfg->vms[i];
		struct ci_seed s = CI_SEED_INIT;
		struct buf iso = BUF_INIT;
		char *rel = xasprintf("vms/%s", vm->name), *sub = fs_join(dir, rel);

		if ((r = ci_seed_make(&s, cfg, vm, err)) == 0 &&
		    (r = fs_mkdir_p(sub, 0700, err)) == 0 &&
		    (r = write_one(dir, vm->name, "user-data", s.user_data.ptr,
				   s.user_data.len, changed, total, err)) == 0 &&
		    (r = write_one(dir, vm->name, "network-config", s.network_config.ptr,
				   s.network_config.len, changed, total, err)) == 0 &&
		    (r = write_one(dir, vm->name, "meta-data", s.meta_data.ptr,
				   s.meta_data.len, changed, total, err)) == 0) {
			/* util/iso fixes every timestamp: the same files make
			 * the same image, so an unchanged seed stays unchanged. */
			if ((r = ci_seed_iso(&iso, &s, err)) == 0)
				r = write_one(dir, vm->name, "cidata.iso", iso.ptr,
					      iso.len, changed, total, err);
		}
		ci_seed_release(&s);
		buf_release(&iso);
		free(rel);
		free(sub);
	}
	return r;
}

/* --- templates and images ----------------------------------------------- */

static bool
pve_bool_on(const char *v, size_t n)
{
	static const char *const on[] = { "1", "yes", "on", "true", NULL };
	size_t i;

	for (i = 0; on[i]; i++)
		if (strlen(on[i]) == n && !strncasecmp(v, on[i], n))
			return true;
	return false;
}

/* agent: [enabled=]<bool>[,fstrim_cloned_disks=..][,type=..] */
static bool
agent_enabled(const char *v)
{
	const char *p = v;

	while (p && *p) {
		size_t n = strcspn(p, ",");

		if (!memchr(p, '=', n))
			return pve_bool_on(p, n);
		if (n > 8 && !strncmp(p, "enabled=", 8))
			return pve_bool_on(p + 8, n - 8);
		p = p[n] ? p + n + 1 : NULL;
	}
	return false;
}

int
ci_template_check(json_t *config, char *why, size_t whylen)
{
	const char *key, *agent;
	json_t *v, *t = json_object_get(config, "template");
	bool drive = false;

	if (!(json_is_integer(t) && json_integer_value(t) == 1) &&
	    !(json_is_string(t) && !strcmp(json_string_value(t), "1"))) {
		snprintf(why, whylen, "it is not a template (convert it with "
			 "'qm template ID' or build one with 'strata template')");
		return -1;
	}
	json_object_foreach(config, key, v) {
		const char *s = json_string_value(v), *vol;
		size_t n;

		if (!s || (strncmp(key, "ide", 3) && strncmp(key, "scsi", 4) &&
			   strncmp(key, "sata", 4)))
			continue;
		if (!isdigit((unsigned char)key[strcspn(key, "0123456789")]) ||
		    !strcmp(key, "scsihw"))
			continue;
		vol = s;
		n = strcspn(vol, ",");
		/* STORAGE:vm-ID-cloudinit[.qcow2] */
		if (memmem(vol, n, "-cloudinit", 10))
			drive = true;
	}
	if (!drive) {
		snprintf(why, whylen, "it has no cloud-init drive, so a clone would "
			 "boot without its user, keys or address (add one: qm set ID "
			 "--ide2 STORAGE:cloudinit)");
		return -1;
	}
	agent = json_string_value(json_object_get(config, "agent"));
	if (!agent && json_is_integer(json_object_get(config, "agent")))
		agent = json_integer_value(json_object_get(config, "agent")) ? "1" : "0";
	if (!agent || !agent_enabled(agent)) {
		snprintf(why, whylen, "the guest agent is not enabled, so strata "
			 "cannot read a clone's address (qm set ID --agent enabled=1)");
		return -1;
	}
	return 0;
}

int
ci_import_filename(const char *url, char **out, char *why, size_t whylen)
{
	const char *end = url + strcspn(url, "?#"), *base = end, *dot;
	char *name;
	size_t n;

	*out = NULL;
	while (base > url && base[-1] != '/')
		base--;
	n = (size_t)(end - base);
	if (!n) {
		snprintf(why, whylen, "the URL names no file");
		return -1;
	}
	name = xstrndup(base, n);
	if (strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
		   "0123456789-.+=_") != n) {
		snprintf(why, whylen, "'%s' has characters an import file name "
			 "cannot hold (letters, digits and -.+=_)", name);
		free(name);
		return -1;
	}
	dot = strrchr(name, '.');
	if (dot && !strcmp(dot, ".img")) {
		char *q = xasprintf("%.*s.qcow2", (int)(dot - name), name);

		free(name);
		name = q;
		dot = strrchr(name, '.');
	}
	if (!dot || (strcmp(dot, ".qcow2") && strcmp(dot, ".raw") &&
		     strcmp(dot, ".vmdk"))) {
		snprintf(why, whylen, "'%s' is not a .img, .qcow2, .raw or .vmdk "
			 "image (Proxmox does not decompress .xz or .zst for "
			 "import; use the uncompressed image's URL)", name);
		free(name);
		return -1;
	}
	*out = name;
	return 0;
}
