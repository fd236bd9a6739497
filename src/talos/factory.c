#include "talos/factory.h"

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

/*
 * The hash covers go-yaml's exact bytes, so this writes them itself rather
 * than through libfyaml (whose block layout differs: "-   x" items at the
 * key's column). To stay exact it only takes values go-yaml leaves plain;
 * anything that would need quoting is refused.
 */
static int
plain_ok(const char *s)
{
	static const char first_bad[] = "-?:,[]{}#&*!|>'\"%@` ";

	if (!*s || strchr(first_bad, s[0]) || s[strlen(s) - 1] == ' ')
		return 0;
	if (strstr(s, ": ") || strstr(s, " #"))
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	/* Words YAML would read as another type. */
	if (strcmp(s, "true") == 0 || strcmp(s, "false") == 0 ||
	    strcmp(s, "null") == 0 || strcmp(s, "~") == 0 ||
	    strspn(s, "0123456789.+-eE") == strlen(s))
		return 0;
	return 1;
}

static int
add_list(struct buf *out, const char *indent, const char *const *v, size_t n,
	 struct err *err)
{
	for (size_t i = 0; i < n; i++) {
		if (!plain_ok(v[i]))
			return err_set(err, ERR_USAGE, "schematic value '%s' needs YAML quoting, which strata does not reproduce", v[i]);
		buf_addf(out, "%s- %s\n", indent, v[i]);
	}
	return 0;
}

int
talos_schematic_yaml(struct buf *out, const struct schematic *s,
		     struct err *err)
{
	int r;

	if (!s->n_kernel_args && !s->n_extensions) {
		buf_adds(out, "customization: {}\n");
		return 0;
	}
	buf_adds(out, "customization:\n");
	if (s->n_kernel_args) {
		buf_adds(out, "    extraKernelArgs:\n");
		if ((r = add_list(out, "        ", s->kernel_args,
				  s->n_kernel_args, err)) < 0)
			return r;
	}
	if (s->n_extensions) {
		buf_adds(out, "    systemExtensions:\n        officialExtensions:\n");
		if ((r = add_list(out, "            ", s->extensions,
				  s->n_extensions, err)) < 0)
			return r;
	}
	return 0;
}

int
talos_schematic_id(char id[65], const struct schematic *s, struct err *err)
{
	struct buf y = BUF_INIT;
	unsigned char md[32];
	unsigned int mdlen = 0;
	int r;

	if ((r = talos_schematic_yaml(&y, s, err)) < 0)
		goto out;
	if (EVP_Digest(y.ptr, y.len, md, &mdlen, EVP_sha256(), NULL) != 1 ||
	    mdlen != 32) {
		r = err_set(err, ERR_FAIL, "sha256 failed");
		goto out;
	}
	for (int i = 0; i < 32; i++)
		snprintf(id + 2 * i, 3, "%02x", md[i]);
out:
	buf_release(&y);
	return r;
}

char *
talos_factory_iso_url(const char *base, const char *id, const char *version,
		      const char *platform)
{
	size_t n;

	if (!base)
		base = "https://" FACTORY_HOST;
	n = strlen(base);
	while (n && base[n - 1] == '/')
		n--;
	return xasprintf("%.*s/image/%s/%s/%s-amd64.iso", (int)n, base, id,
			 version, platform);
}

char *
talos_factory_installer(const char *id, const char *version,
			const char *platform)
{
	return xasprintf(FACTORY_HOST "/%s-installer/%s:%s", platform, id,
			 version);
}

/* ------------------------------------------------------------ POST */

struct reply {
	struct buf body;
};

static size_t
on_reply(char *p, size_t sz, size_t n, void *ctx)
{
	struct reply *r = ctx;

	if (r->body.len + sz * n > 64 * 1024)
		return 0;                 /* a schematic id reply is tiny */
	buf_add(&r->body, p, sz * n);
	return sz * n;
}

int
talos_factory_register(const char *base, const struct schematic *s,
		       char id[65], struct err *err)
{
	struct buf y = BUF_INIT, url = BUF_INIT;
	struct reply rep = { BUF_INIT };
	char local[65], ebuf[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdr = NULL;
	json_t *j = NULL;
	const char *got;
	size_t n = strlen(base);
	long code = 0;
	CURLcode rc;
	CURL *h = NULL;
	int r;

	if ((r = talos_schematic_yaml(&y, s, err)) < 0 ||
	    (r = talos_schematic_id(local, s, err)) < 0)
		goto out;
	while (n && base[n - 1] == '/')
		n--;
	buf_addf(&url, "%.*s/schematics", (int)n, base);
	if (!(h = curl_easy_init())) {
		r = err_set(err, ERR_FAIL, "curl init failed");
		goto out;
	}
	hdr = curl_slist_append(hdr, "Content-Type: application/yaml");
	curl_easy_setopt(h, CURLOPT_URL, url.ptr);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, y.ptr);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)y.len);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 60000L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &rep);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (rc != CURLE_OK) {
		r = err_set(err, ERR_FAIL, "POST %s: %s", url.ptr,
			    ebuf[0] ? ebuf : curl_easy_strerror(rc));
		goto out;
	}
	if (code != 200 && code != 201) {
		r = err_set(err, ERR_FAIL, "POST %s: HTTP %ld: %.300s", url.ptr,
			    code, rep.body.len ? rep.body.ptr : "");
		goto out;
	}
	j = json_loadb(rep.body.ptr ? rep.body.ptr : "", rep.body.len, 0, NULL);
	got = json_string_value(json_object_get(j, "id"));
	if (!got || strlen(got) != 64) {
		r = err_set(err, ERR_FAIL, "POST %s: the reply carries no "
			    "schematic id", url.ptr);
		goto out;
	}
	/* The id is the hash of the factory's canonical YAML; strata's must
	 * be the same bytes, or every URL it builds names another image. */
	if (strcmp(got, local)) {
		r = err_set(err, ERR_FAIL, "the Image Factory at %.*s gives "
			    "schematic id %s, strata computed %s for the same "
			    "schematic: its canonical YAML differs from "
			    "strata's; set talos.schematic_id to the factory's",
			    (int)n, base, got, local);
		goto out;
	}
	snprintf(id, 65, "%s", got);
out:
	json_decref(j);
	curl_slist_free_all(hdr);
	if (h)
		curl_easy_cleanup(h);
	buf_release(&rep.body);
	buf_release(&url);
	buf_release(&y);
	return r;
}
