/*
 * Proxmox storage uploads and volume deletion (see proxmox.h).
 *
 * The upload is multipart/form-data as pveproxy reads it: form fields,
 * then the file as the field named "filename", whose Content-Disposition
 * filename becomes the file name Proxmox stores (normalised). Everything
 * goes in one buffer with a Content-Length: Proxmox refuses chunked
 * bodies (FACTS.md §1).
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider/proxmox/proxmox.h"
#include "util/http.h"

/* A boundary that does not occur in the data (RFC 2046 §5.1.1). */
static int
pick_boundary(char out[48], const void *data, size_t len, struct err *err)
{
	unsigned char rnd[16];
	int tries, i;

	for (tries = 0; tries < 4; tries++) {
		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return err_set(err, ERR_FAIL, "upload: no random bytes");
		memcpy(out, "strata-", 7);
		for (i = 0; i < 16; i++)
			snprintf(out + 7 + 2 * i, 3, "%02x", rnd[i]);
		if (!memmem(data, len, out, strlen(out)))
			return 0;
	}
	return err_set(err, ERR_FAIL, "upload: no boundary outside the data");
}

static void
add_field(struct buf *b, const char *bnd, const char *name, const char *value)
{
	buf_addf(b, "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n"
		 "%s\r\n", bnd, name, value);
}

static int
sha256_hex(char out[65], const void *data, size_t len, struct err *err)
{
	unsigned char md[32];
	unsigned int n = 0;
	int i;

	if (EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) != 1)
		return err_set(err, ERR_FAIL, "upload: sha256 failed");
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* The file name as a quoted-string: no quote, backslash or control byte. */
static bool
filename_ok(const char *s)
{
	for (; *s; s++)
		if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

int
pve_storage_upload(struct pve *p, const char *node, const char *storage,
		   const char *content, const char *filename, const void *data,
		   size_t len, char **upid_out, struct err *err)
{
	char bnd[48], sum[65], *path, *ctype;
	struct buf body = BUF_INIT;
	json_t *res = NULL;
	int r;

	*upid_out = NULL;
	if (!filename_ok(filename))
		return err_set(err, ERR_FAIL, "upload: bad file name");
	if ((r = pick_boundary(bnd, data, len, err)) < 0 ||
	    (r = sha256_hex(sum, data, len, err)) < 0)
		return r;
	add_field(&body, bnd, "content", content);
	add_field(&body, bnd, "checksum-algorithm", "sha256");
	add_field(&body, bnd, "checksum", sum);
	buf_addf(&body, "--%s\r\nContent-Disposition: form-data; name=\"filename\"; "
		 "filename=\"%s\"\r\nContent-Type: application/octet-stream\r\n\r\n",
		 bnd, filename);
	buf_add(&body, data, len);
	buf_addf(&body, "\r\n--%s--\r\n", bnd);
	path = xasprintf("/nodes/%s/storage/%s/upload", node, storage);
	ctype = xasprintf("multipart/form-data; boundary=%s", bnd);
	r = pve_call_body(p, "POST", path, ctype, body.ptr, body.len, &res, err);
	if (r == 0 && json_is_string(res))
		*upid_out = xstrdup(json_string_value(res));
	else if (r == 0)
		r = err_set(err, ERR_FAIL, "POST %s: no task id in the answer", path);
	json_decref(res);
	/* The body holds the file (a machine config: CA keys). */
	OPENSSL_cleanse(body.ptr, body.len);
	buf_release(&body);
	free(ctype);
	free(path);
	return r;
}

int
pve_storage_volids(struct pve *p, const char *node, const char *storage,
		   const char *content, char ***out, size_t *n, struct err *err)
{
	char *path = xasprintf("/nodes/%s/storage/%s/content", node, storage);
	struct pve_params q;
	json_t *data = NULL, *e;
	size_t i;
	int r;

	*out = NULL;
	*n = 0;
	pve_params_init(&q);
	pve_params_add(&q, "content", content);
	r = pve_call(p, "GET", path, &q, &data, err);
	if (r == 0 && json_is_array(data)) {
		*out = xcalloc(json_array_size(data) + 1, sizeof(char *));
		json_array_foreach(data, i, e) {
			const char *v = json_string_value(json_object_get(e, "volid"));

			if (v)
				(*out)[(*n)++] = xstrdup(v);
		}
	}
	json_decref(data);
	pve_params_release(&q);
	free(path);
	return r;
}

void
pve_volids_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int
pve_storage_delete(struct pve *p, const char *node, const char *storage,
		   const char *volid, char **upid_out, struct err *err)
{
	struct buf path = BUF_INIT;
	json_t *res = NULL;
	int r;

	*upid_out = NULL;
	buf_addf(&path, "/nodes/%s/storage/%s/content/", node, storage);
	http_urlencode(&path, volid);
	r = pve_call(p, "DELETE", path.ptr, NULL, &res, err);
	/* Proxmox answers null when the task already finished. */
	if (r == 0 && json_is_string(res))
		*upid_out = xstrdup(json_string_value(res));
	json_decref(res);
	buf_release(&path);
	return r;
}
