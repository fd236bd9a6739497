#include "talos/secrets.h"

#include <errno.h>
#include <libfyaml.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "talos/pki.h"
#include "talos/tyaml.h"
#include "util/fs.h"
#include "util/yaml.h"

#define CA_HOURS 87600L
#define SECRETS_MAX (1 << 20)

static void
keypair_release(struct talos_keypair *kp)
{
	X509_free(kp->crt);
	EVP_PKEY_free(kp->key);
	free(kp->crt_b64);
	secret_strfree(kp->key_b64);
	memset(kp, 0, sizeof(*kp));
}

void
talos_secrets_free(struct talos_secrets *s)
{
	if (!s)
		return;
	free(s->cluster_id);
	secret_strfree(s->cluster_secret);
	secret_strfree(s->bootstrap_token);
	secret_strfree(s->secretbox_secret);
	secret_strfree(s->aescbc_secret);
	secret_strfree(s->trustd_token);
	keypair_release(&s->etcd);
	keypair_release(&s->k8s);
	keypair_release(&s->aggregator);
	keypair_release(&s->service_account);
	keypair_release(&s->os);
	OPENSSL_cleanse(s, sizeof(*s));
	free(s);
}

/* ---- parsing ---- */

static int
req_str(char **out, struct fy_node *root, const char *path, struct err *err)
{
	struct fy_node *n = fy_node_by_path(root, path, (size_t)-1, FYNWF_DONT_FOLLOW);
	const char *s;
	size_t len;

	if (!n || fy_node_get_type(n) != FYNT_SCALAR ||
	    !(s = fy_node_get_scalar(n, &len)) || len == 0) {
		char dotted[96];

		snprintf(dotted, sizeof(dotted), "%s", path + 1);
		for (char *p = dotted; *p; p++)
			if (*p == '/')
				*p = '.';
		return err_set(err, ERR_FAIL, "missing '%s'", dotted);
	}
	*out = xstrndup(s, len);
	return 0;
}

static int
parse_keypair(struct talos_keypair *kp, struct fy_node *root,
	      const char *name, bool want_crt, struct err *err)
{
	struct buf pem = BUF_INIT;
	char path[96];
	int r;

	snprintf(path, sizeof(path), "/certs/%s/key", name);
	if ((r = req_str(&kp->key_b64, root, path, err)) < 0)
		goto out;
	if (pki_unb64(&pem, kp->key_b64) < 0 ||
	    !(kp->key = pki_key_from_pem(pem.ptr, pem.len))) {
		r = err_set(err, ERR_FAIL, "'certs.%s.key' is not a base64 PEM private key", name);
		goto out;
	}
	if (!want_crt)
		goto out;
	snprintf(path, sizeof(path), "/certs/%s/crt", name);
	if ((r = req_str(&kp->crt_b64, root, path, err)) < 0)
		goto out;
	buf_release_secret(&pem);
	if (pki_unb64(&pem, kp->crt_b64) < 0 ||
	    !(kp->crt = pki_cert_from_pem(pem.ptr, pem.len))) {
		r = err_set(err, ERR_FAIL, "'certs.%s.crt' is not a base64 PEM certificate", name);
		goto out;
	}
	if (X509_check_private_key(kp->crt, kp->key) != 1)
		r = err_set(err, ERR_FAIL, "'certs.%s': key does not match the certificate", name);
out:
	buf_release_secret(&pem);
	return r;
}

int
talos_secrets_parse(struct talos_secrets **out, const char *text, size_t len,
		    struct err *err)
{
	struct talos_secrets *s;
	struct fy_document *doc;
	struct fy_node *root;
	int r;

	*out = NULL;
	if (!(doc = yaml_parse(text, len, err)))
		return err_wrap(err, "parse secrets bundle");
	s = xcalloc(1, sizeof(*s));
	root = fy_document_root(doc);
	if (!root || fy_node_get_type(root) != FYNT_MAPPING) {
		r = err_set(err, ERR_FAIL, "secrets bundle is not a mapping");
		goto out;
	}
	if ((r = req_str(&s->cluster_id, root, "/cluster/id", err)) < 0 ||
	    (r = req_str(&s->cluster_secret, root, "/cluster/secret", err)) < 0 ||
	    (r = req_str(&s->bootstrap_token, root, "/secrets/bootstraptoken", err)) < 0 ||
	    (r = req_str(&s->trustd_token, root, "/trustdinfo/token", err)) < 0)
		goto out;
	req_str(&s->secretbox_secret, root, "/secrets/secretboxencryptionsecret", err);
	req_str(&s->aescbc_secret, root, "/secrets/aescbcencryptionsecret", err);
	err_clear(err);
	if (!s->secretbox_secret == !s->aescbc_secret) {
		r = err_set(err, ERR_FAIL, "exactly one of 'secrets.secretboxencryptionsecret' and 'secrets.aescbcencryptionsecret' must be set");
		goto out;
	}
	if ((r = parse_keypair(&s->etcd, root, "etcd", true, err)) < 0 ||
	    (r = parse_keypair(&s->k8s, root, "k8s", true, err)) < 0 ||
	    (r = parse_keypair(&s->aggregator, root, "k8saggregator", true, err)) < 0 ||
	    (r = parse_keypair(&s->service_account, root, "k8sserviceaccount", false, err)) < 0 ||
	    (r = parse_keypair(&s->os, root, "os", true, err)) < 0)
		goto out;
	*out = s;
	s = NULL;
out:
	fy_document_destroy(doc);
	talos_secrets_free(s);
	return r < 0 ? err_wrap(err, "secrets bundle") : 0;
}

/* ---- generation ---- */

char *
talos_token_new(void)
{
	static const char alpha[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char *t = xmalloc(24);
	size_t i = 0;

	while (i < 23) {
		unsigned char b;

		if (i == 6) {
			t[i++] = '.';
			continue;
		}
		if (RAND_bytes(&b, 1) != 1)
			abort();
		if (b >= 252)
			continue;
		t[i++] = alpha[b % 36];
	}
	t[23] = '\0';
	return t;
}

static char *
random_b64(int url)
{
	unsigned char raw[32];
	char *s;

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		abort();
	s = pki_b64(raw, sizeof(raw), url);
	OPENSSL_cleanse(raw, sizeof(raw));
	return s;
}

static int
keypair_encode(struct talos_keypair *kp)
{
	struct buf b = BUF_INIT;
	int r = -1;

	if (kp->crt) {
		if (pki_cert_pem(&b, kp->crt) < 0)
			goto out;
		kp->crt_b64 = pki_b64(b.ptr, b.len, 0);
		buf_reset(&b);
	}
	if (pki_key_pem(&b, kp->key) < 0)
		goto out;
	kp->key_b64 = pki_b64(b.ptr, b.len, 0);
	r = 0;
out:
	buf_release_secret(&b);
	return r;
}

static int
make_ca(struct talos_keypair *kp, enum pki_alg alg, const char *org)
{
	if (!(kp->key = pki_key_new(alg)) ||
	    !(kp->crt = pki_ca_new(kp->key, org, CA_HOURS)))
		return -1;
	return keypair_encode(kp);
}

int
talos_secrets_generate(struct talos_secrets **out, struct err *err)
{
	struct talos_secrets *s = xcalloc(1, sizeof(*s));

	*out = NULL;
	s->cluster_id = random_b64(1);
	s->cluster_secret = random_b64(0);
	s->bootstrap_token = talos_token_new();
	s->secretbox_secret = random_b64(0);
	s->trustd_token = talos_token_new();
	if (make_ca(&s->etcd, PKI_P256, "etcd") < 0 ||
	    make_ca(&s->k8s, PKI_P256, "kubernetes") < 0 ||
	    make_ca(&s->aggregator, PKI_P256, NULL) < 0 ||
	    make_ca(&s->os, PKI_ED25519, "talos") < 0 ||
	    !(s->service_account.key = pki_key_new(PKI_RSA4096)) ||
	    keypair_encode(&s->service_account) < 0) {
		talos_secrets_free(s);
		return err_set(err, ERR_FAIL, "generate secrets bundle: openssl failure");
	}
	*out = s;
	return 0;
}

static void
put_pair(struct fy_node *certs, const char *name, const struct talos_keypair *kp)
{
	struct fy_node *m = y_map(fy_node_document(certs));

	if (kp->crt_b64)
		y_puts(m, "crt", kp->crt_b64);
	y_puts_secret(m, "key", kp->key_b64);
	y_put(certs, name, m);
}

int
talos_secrets_encode(struct buf *out, const struct talos_secrets *s,
		     struct err *err)
{
	struct ydocs docs = YDOCS_INIT;
	struct fy_document *doc = yaml_new_document();
	struct fy_node *root, *m;
	int r;

	if (!doc)
		return err_set(err, ERR_FAIL, "out of memory");
	root = y_map(doc);
	fy_document_set_root(doc, root);
	m = y_map(doc);
	y_puts(m, "id", s->cluster_id);
	y_puts_secret(m, "secret", s->cluster_secret);
	y_put(root, "cluster", m);
	m = y_map(doc);
	y_puts_secret(m, "bootstraptoken", s->bootstrap_token);
	if (s->secretbox_secret)
		y_puts_secret(m, "secretboxencryptionsecret", s->secretbox_secret);
	else
		y_puts_secret(m, "aescbcencryptionsecret", s->aescbc_secret);
	y_put(root, "secrets", m);
	m = y_map(doc);
	y_puts_secret(m, "token", s->trustd_token);
	y_put(root, "trustdinfo", m);
	m = y_map(doc);
	put_pair(m, "etcd", &s->etcd);
	put_pair(m, "k8s", &s->k8s);
	put_pair(m, "k8saggregator", &s->aggregator);
	put_pair(m, "k8sserviceaccount", &s->service_account);
	put_pair(m, "os", &s->os);
	y_put(root, "certs", m);
	ydocs_push(&docs, doc);
	r = ydocs_emit(out, &docs, err);
	ydocs_release(&docs);
	return r;
}

int
talos_secrets_load_or_create(struct talos_secrets **out, const char *path,
			     bool *created, struct err *err)
{
	struct buf text = BUF_INIT_SECRET;
	int r;

	*out = NULL;
	if (created)
		*created = false;
	if (fs_exists(path)) {
		if ((r = fs_read_file(&text, path, SECRETS_MAX, err)) == 0)
			r = talos_secrets_parse(out, text.ptr, text.len, err);
		if (r < 0)
			r = err_wrap(err, "'%s'", path);
		goto out;
	}
	if ((r = talos_secrets_generate(out, err)) < 0 ||
	    (r = talos_secrets_encode(&text, *out, err)) < 0)
		goto out;
	/* Never replace a bundle, even one that appeared meanwhile. */
	if ((r = fs_create_atomic(path, text.ptr, text.len, FS_MODE_SECRET, err)) < 0)
		goto out;
	if (created)
		*created = true;
out:
	if (r < 0) {
		talos_secrets_free(*out);
		*out = NULL;
	}
	buf_release_secret(&text);
	return r;
}
