#include "provider/proxmox/civm.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "provider/proxmox/cloudinit.h"

int
civm_seed_build(const struct config *cfg, const struct vm_config *vm,
		struct buf *iso, char id[CIVM_SEED_ID_LEN + 1], struct err *err)
{
	struct ci_seed s = CI_SEED_INIT;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;
	int r;

	if ((r = ci_seed_make(&s, cfg, vm, err)) == 0)
		r = ci_seed_iso(iso, &s, err);
	ci_seed_release(&s);
	if (r < 0)
		return r;
	if (EVP_Digest(iso->ptr, iso->len, md, &n, EVP_sha256(), NULL) != 1)
		return err_set(err, ERR_FAIL, "seed of vm '%s': SHA-256 failed",
			       vm->name);
	for (i = 0; i < CIVM_SEED_ID_LEN / 2; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
	id[CIVM_SEED_ID_LEN] = 0;
	return 0;
}

int
civm_desired_ci(const struct config *cfg, const struct vm_config *vm,
		char **seed_id, char **sshkeys, struct err *err)
{
	struct buf iso = BUF_INIT, keys = BUF_INIT;
	char id[CIVM_SEED_ID_LEN + 1];
	int r;

	*seed_id = *sshkeys = NULL;
	if ((r = civm_seed_build(cfg, vm, &iso, id, err)) < 0) {
		buf_release(&iso);
		return r;
	}
	buf_release(&iso);
	*seed_id = xstrdup(id);
	ci_sshkeys_encode(&keys, &vm->ssh_keys);
	*sshkeys = buf_detach(&keys, NULL);
	if (!*sshkeys)
		*sshkeys = xstrdup("");
	return 0;
}

char *
civm_seed_file(const char *env, const char *vm, const char *id)
{
	return xasprintf("strata.%s.%s.seed-%s.iso", env, vm, id);
}

/* The file part of "STORAGE:iso/FILE[,opts]", up to the first comma. */
static char *
iso_file(const char *volid)
{
	const char *p = volid ? strstr(volid, ":iso/") : NULL;

	if (!p)
		return NULL;
	p += 5;
	return xstrndup(p, strcspn(p, ","));
}

char *
civm_seed_of_drive(const char *drive, const char *env, const char *vm)
{
	char *file = iso_file(drive), *prefix, *id = NULL;
	size_t pl;

	if (!file || !vm)
		goto out;
	prefix = xasprintf("strata.%s.%s.seed-", env, vm);
	pl = strlen(prefix);
	if (!strncmp(file, prefix, pl) && strlen(file) == pl + CIVM_SEED_ID_LEN + 4 &&
	    !strcmp(file + pl + CIVM_SEED_ID_LEN, ".iso"))
		id = xstrndup(file + pl, CIVM_SEED_ID_LEN);
	free(prefix);
out:
	free(file);
	return id;
}

bool
civm_is_seed_volid(const char *volid, const char *env, const char *vm)
{
	char *id = civm_seed_of_drive(volid, env, vm);
	bool yes = id != NULL;

	free(id);
	return yes;
}

static int
hexval(int c)
{
	return isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
}

char *
civm_keys_summary(const char *enc)
{
	struct buf dec = BUF_INIT, out = BUF_INIT;
	char *save = NULL, *line, *text;
	size_t n = 0;
	const char *p;

	for (p = enc ? enc : ""; *p; p++) {
		if (p[0] == '%' && isxdigit((unsigned char)p[1]) &&
		    isxdigit((unsigned char)p[2])) {
			char ch = (char)(hexval((unsigned char)p[1]) * 16 +
					 hexval((unsigned char)p[2]));

			buf_add(&dec, ch ? &ch : " ", 1);
			p += 2;
		} else {
			buf_add(&dec, p, 1);
		}
	}
	text = buf_detach(&dec, NULL);
	if (!text)
		text = xstrdup("");
	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		const char *sp1 = strchr(line, ' '), *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
		size_t len;

		if (!sp1)
			continue;
		n++;
		if (sp2) {
			buf_addf(&out, "%s%s", out.len ? ", " : "", sp2 + 1);
		} else {
			/* no comment: the end of the key data */
			len = strlen(sp1 + 1);
			buf_addf(&out, "%s...%s", out.len ? ", " : "",
				 sp1 + 1 + (len > 8 ? len - 8 : 0));
		}
	}
	free(text);
	{
		char *list = buf_detach(&out, NULL), *s;

		s = n ? xasprintf("%zu key%s: %s", n, n == 1 ? "" : "s", list)
		      : xstrdup("no keys");
		free(list);
		return s;
	}
}

int
pve_vm_clone(struct pve *p, const char *node, int vmid,
	     const struct pve_params *params, char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/clone", node, vmid);
	json_t *data = NULL;
	int r = pve_call(p, "POST", path, params, &data, err);

	*upid_out = NULL;
	if (r == 0) {
		if (json_is_string(data) && !strncmp(json_string_value(data), "UPID:", 5))
			*upid_out = xstrdup(json_string_value(data));
		else
			r = err_set(err, ERR_FAIL, "POST %s: expected a task id", path);
	}
	json_decref(data);
	free(path);
	return r;
}
