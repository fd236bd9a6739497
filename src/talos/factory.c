#include "talos/factory.h"

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
talos_factory_iso_url(const char *id, const char *version, const char *platform)
{
	return xasprintf("https://" FACTORY_HOST "/image/%s/%s/%s-amd64.iso",
			 id, version, platform);
}

char *
talos_factory_installer(const char *id, const char *version,
			const char *platform)
{
	return xasprintf(FACTORY_HOST "/%s-installer/%s:%s", platform, id,
			 version);
}
