#include "talos/talosconfig.h"

#include <libfyaml.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <string.h>

#include "talos/pki.h"
#include "talos/tyaml.h"
#include "util/yaml.h"

#define ADMIN_HOURS 8760L
#define RENEW_DAYS 30

/* Old admin cert+key, if signed by this OS CA and not about to expire. */
static bool
reusable(const struct talosconfig_input *in, const struct talos_secrets *s,
	 char **crt_b64, char **key_b64)
{
	struct ydocs d = YDOCS_INIT;
	struct err err = ERR_INIT;
	struct fy_node *ctx;
	struct buf pem = BUF_INIT_SECRET;
	X509 *crt = NULL;
	EVP_PKEY *key = NULL, *ca_pub;
	char *c = NULL, *k = NULL;
	bool ok = false;
	int days, secs;

	if (!in->previous ||
	    ydocs_parse(&d, in->previous, in->previous_len, &err) < 0 || d.n != 1)
		goto out;
	ctx = y_get(y_get(fy_document_root(d.v[0]), "contexts"), in->context);
	if (!(c = y_get_str(ctx, "crt")) || !(k = y_get_str(ctx, "key")))
		goto out;
	if (pki_unb64(&pem, c) < 0 || !(crt = pki_cert_from_pem(pem.ptr, pem.len)))
		goto out;
	{
		char org[64] = "";

		/* a cert of another role is not reused */
		if (X509_NAME_get_text_by_NID(X509_get_subject_name(crt),
					      NID_organizationName, org,
					      sizeof(org)) < 0 ||
		    strcmp(org, in->role ? in->role : "os:admin"))
			goto out;
	}
	buf_release(&pem);
	if (pki_unb64(&pem, k) < 0 || !(key = pki_key_from_pem(pem.ptr, pem.len)))
		goto out;
	ca_pub = X509_get0_pubkey(s->os.crt);
	if (!ca_pub || X509_verify(crt, ca_pub) != 1 ||
	    X509_check_private_key(crt, key) != 1 ||
	    X509_get_extended_key_usage(crt) != XKU_SSL_CLIENT)
		goto out;
	if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(crt)) != 1 ||
	    days < RENEW_DAYS)
		goto out;
	*crt_b64 = c;
	*key_b64 = k;
	c = k = NULL;
	ok = true;
out:
	buf_release_secret(&pem);
	X509_free(crt);
	EVP_PKEY_free(key);
	free(c);
	secret_strfree(k);
	ydocs_release(&d);
	return ok;
}

static int
new_admin(const struct talos_secrets *s, const char *role, char **crt_b64,
	  char **key_b64)
{
	EVP_PKEY *key = pki_key_new(PKI_ED25519);
	X509 *crt = NULL;
	struct buf b = BUF_INIT;
	int r = -1;

	if (!key || !(crt = pki_client_new(s->os.crt, s->os.key, key,
					   role ? role : "os:admin", ADMIN_HOURS)))
		goto out;
	if (pki_cert_pem(&b, crt) < 0)
		goto out;
	*crt_b64 = pki_b64(b.ptr, b.len, 0);
	buf_reset(&b);
	if (pki_key_pem(&b, key) < 0) {
		free(*crt_b64);
		*crt_b64 = NULL;
		goto out;
	}
	*key_b64 = pki_b64(b.ptr, b.len, 0);
	r = 0;
out:
	buf_release_secret(&b);
	X509_free(crt);
	EVP_PKEY_free(key);
	return r;
}

static struct fy_node *
seq_of(struct fy_document *doc, const char *const *v, size_t n)
{
	struct fy_node *s = y_seq(doc);

	for (size_t i = 0; i < n; i++)
		fy_node_sequence_append(s, y_str(doc, v[i]));
	return s;
}

int
talos_talosconfig_build(struct buf *out, const struct talosconfig_input *in,
			const struct talos_secrets *s, bool *reused,
			struct err *err)
{
	struct ydocs d = YDOCS_INIT;
	struct fy_document *doc;
	struct fy_node *root, *ctxs, *ctx;
	char *crt = NULL, *key = NULL;
	int r;

	if (!in->context || !*in->context)
		return err_set(err, ERR_USAGE, "talosconfig needs a context name");
	if (in->n_endpoints == 0 || in->n_nodes == 0)
		return err_set(err, ERR_USAGE, "talosconfig needs at least one endpoint and one node");
	*reused = reusable(in, s, &crt, &key);
	if (!*reused && new_admin(s, in->role, &crt, &key) < 0)
		return err_set(err, ERR_FAIL, "create admin client certificate: openssl failure");
	if (!(doc = yaml_new_document()))
		abort();
	root = y_map(doc);
	fy_document_set_root(doc, root);
	y_puts(root, "context", in->context);
	ctxs = y_map(doc);
	ctx = y_map(doc);
	y_put(ctx, "endpoints", seq_of(doc, in->endpoints, in->n_endpoints));
	y_put(ctx, "nodes", seq_of(doc, in->nodes, in->n_nodes));
	y_puts(ctx, "ca", s->os.crt_b64);
	y_puts(ctx, "crt", crt);
	y_puts_secret(ctx, "key", key);
	y_put(ctxs, in->context, ctx);
	y_put(root, "contexts", ctxs);
	ydocs_push(&d, doc);
	r = ydocs_emit(out, &d, err);
	ydocs_release(&d);
	free(crt);
	secret_strfree(key);
	return r;
}
