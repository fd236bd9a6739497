#include "talos/api.h"

#include <libfyaml.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.pb-c.h"
#include "cosi.pb-c.h"
#include "machine.pb-c.h"
#include "talos/pki.h"
#include "talos/tyaml.h"
#include "util/fs.h"
#include "util/grpc.h"
#include "util/isolate.h"
#include "util/out.h"

#define SVC "/machine.MachineService/"

/* ------------------------------------------------------------ credentials */

static char *
field_pem(struct fy_node *ctx, const char *key, const char *what,
	  struct err *err)
{
	struct buf pem = BUF_INIT;
	char *b64 = y_get_str(ctx, key);

	if (!b64 || pki_unb64(&pem, b64) < 0 || !pem.len ||
	    !memmem(pem.ptr, pem.len, "-----BEGIN ", 11)) {
		free(b64);
		buf_release(&pem);
		err_set(err, ERR_FAIL, "'%s' (%s) is missing or not base64 PEM",
			key, what);
		return NULL;
	}
	free(b64);
	buf_add(&pem, "", 1);   /* NUL-terminate */
	return pem.ptr;
}

/*
 * In a fresh process (isolate_spawn: the Talos phases call this on their
 * node threads): the talosconfig parsed by libfyaml,
 * which frees its copies of the client key unwiped. Back come the
 * context, the CA and client certificates and the key, as PEM.
 */
static int
creds_child(void *ctx, struct buf *out, struct err *err)
{
	const struct buf *t = ctx;
	struct ydocs d = YDOCS_INIT;
	struct fy_node *root, *cx;
	char *context = NULL, *ca = NULL, *crt = NULL, *key = NULL;
	int r = 0;

	if (ydocs_parse(&d, t->ptr, t->len, err) < 0)
		return -1;
	if (d.n != 1) {
		r = err_set(err, ERR_FAIL, "expected one YAML document");
		goto out;
	}
	root = fy_document_root(d.v[0]);
	context = y_get_str(root, "context");
	if (!context) {
		r = err_set(err, ERR_FAIL, "no current 'context'");
		goto out;
	}
	cx = y_get(y_get(root, "contexts"), context);
	if (!cx) {
		r = err_set(err, ERR_FAIL, "context '%s' is not under 'contexts'",
			    context);
		goto out;
	}
	if (!(ca = field_pem(cx, "ca", "the OS CA certificate", err)) ||
	    !(crt = field_pem(cx, "crt", "the client certificate", err)) ||
	    !(key = field_pem(cx, "key", "the client key", err))) {
		r = err_wrap(err, "context '%s'", context);
		goto out;
	}
	isolate_put_str(out, context);
	isolate_put_str(out, ca);
	isolate_put_str(out, crt);
	isolate_put_str(out, key);
out:
	free(context);
	free(ca);
	free(crt);
	secret_strfree(key);
	ydocs_release(&d);
	return r;
}
ISOLATE_OP(creds_child);

int
talos_creds_parse(struct talos_creds *c, const char *text, size_t len,
		  struct err *err)
{
	struct buf res = BUF_INIT_SECRET, kp = BUF_INIT_SECRET;
	struct isolate_reader rd;
	EVP_PKEY *key;
	char *raw_key = NULL;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = isolate_spawn(creds_child, text, len, &res, err)) < 0)
		goto out;
	isolate_reader_init(&rd, &res);
	c->context = isolate_get_str(&rd);
	c->ca_pem = isolate_get_str(&rd);
	c->crt_pem = isolate_get_str(&rd);
	raw_key = isolate_get_str(&rd);
	if (rd.bad || !raw_key) {
		r = err_set(err, ERR_FAIL, "talosconfig: malformed result of "
			    "the isolated parse");
		goto out;
	}
	/* Upstream labels Ed25519 keys "ED25519 PRIVATE KEY", which TLS
	 * libraries refuse: re-encode as plain PKCS#8. */
	key = pki_key_from_pem(raw_key, strlen(raw_key));
	if (!key || pki_key_pem(&kp, key) < 0) {
		EVP_PKEY_free(key);
		r = err_set(err, ERR_FAIL, "context '%s': the client key does not "
			    "parse", c->context);
		goto out;
	}
	EVP_PKEY_free(key);
	buf_add(&kp, "", 1);
	c->key_pem = buf_detach(&kp, NULL);
out:
	secret_strfree(raw_key);
	buf_release_secret(&res);
	buf_release_secret(&kp);
	if (r < 0)
		talos_creds_release(c);
	return r;
}

int
talos_creds_load(struct talos_creds *c, const char *path, struct err *err)
{
	struct buf b = BUF_INIT_SECRET;
	int r;

	memset(c, 0, sizeof(*c));
	if ((r = fs_read_file(&b, path, 1 << 20, err)) < 0)
		return r;
	r = talos_creds_parse(c, b.ptr, b.len, err);
	buf_release_secret(&b);
	if (r < 0)
		return err_wrap(err, "%s", path);
	return 0;
}

void
talos_creds_release(struct talos_creds *c)
{
	if (c->key_pem)
		OPENSSL_cleanse(c->key_pem, strlen(c->key_pem));
	free(c->context);
	free(c->ca_pem);
	free(c->crt_pem);
	free(c->key_pem);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------ calls */

bool
talos_status_transient(const struct talos_status *st)
{
	if (st->code == GRPC_TRANSPORT)
		return st->tls == GRPC_TLS_NONE;
	return st->code == GRPC_UNAVAILABLE || st->code == GRPC_DEADLINE_EXCEEDED ||
	       st->code == GRPC_CANCELLED;
}

/* One call; res holds the response messages on success. With reqs, a
 * client stream of n_reqs messages instead of req/len. */
struct stream_io {
	int (*on_msg)(void *ctx, const void *msg, size_t len, struct err *err);
	void *ctx;
	const struct grpc_source *src;
};

static int
call_any(const struct talos_target *t, const char *method, const void *req,
	 size_t len, const struct buf *reqs, size_t n_reqs,
	 const struct stream_io *io, struct grpc_result *res,
	 struct talos_status *st, struct err *err)
{
	struct grpc_opts o;
	char target[64], path[96];
	int r;

	snprintf(target, sizeof(target), "%s:%d", t->addr,
		 t->port > 0 ? t->port : TALOS_API_PORT);
	if (method[0] == '/')          /* another service: the whole path */
		snprintf(path, sizeof(path), "%s", method);
	else
		snprintf(path, sizeof(path), SVC "%s", method);
	memset(&o, 0, sizeof(o));
	o.target = target;
	o.timeout_ms = t->timeout_ms;
	o.connect_timeout_ms = t->connect_timeout_ms;
	if (t->creds) {
		o.ca_pem = t->creds->ca_pem;
		o.cert_pem = t->creds->crt_pem;
		o.key_pem = t->creds->key_pem;
	} else {
		o.insecure = true;
		o.pin_sha256 = t->pin_sha256;
	}
	o.max_reply = t->max_reply;
	if (io) {
		o.on_msg = io->on_msg;
		o.on_msg_ctx = io->ctx;
	}
	grpc_result_init(res);
	if (io && io->src)
		r = grpc_call_source(&o, path, io->src, res, err);
	else
		r = reqs ? grpc_call_stream(&o, path, reqs, n_reqs, res, err)
			 : grpc_call(&o, path, req, len, res, err);
	if (st) {
		st->code = res->status;
		st->tls = res->tls;
		st->cert_requested = res->cert_requested;
		st->hung_up = res->hung_up;
		st->maintenance = !t->creds && !res->cert_requested &&
				  res->status == GRPC_UNIMPLEMENTED;
		memcpy(st->cert_sha256, res->peer_sha256,
		       sizeof(st->cert_sha256));
	}
	return r;
}

static int
call(const struct talos_target *t, const char *method, const void *req,
     size_t len, struct grpc_result *res, struct talos_status *st,
     struct err *err)
{
	return call_any(t, method, req, len, NULL, 0, NULL, res, st, err);
}

int
talos_call(const struct talos_target *t, const char *method, const void *req,
	   size_t len, struct grpc_result *res, struct talos_status *st,
	   struct err *err)
{
	return call_any(t, method, req, len, NULL, 0, NULL, res, st, err);
}

int
talos_call_stream(const struct talos_target *t, const char *method,
		  const struct buf *reqs, size_t n, struct grpc_result *res,
		  struct talos_status *st, struct err *err)
{
	static const struct buf none = BUF_INIT;

	return call_any(t, method, NULL, 0, reqs ? reqs : &none, n, NULL, res,
			st, err);
}

int
talos_call_each(const struct talos_target *t, const char *method,
		const void *req, size_t len,
		int (*on_msg)(void *ctx, const void *msg, size_t len,
			      struct err *err),
		void *ctx, struct grpc_result *res, struct talos_status *st,
		struct err *err)
{
	struct stream_io io = { on_msg, ctx, NULL };

	return call_any(t, method, req, len, NULL, 0, &io, res, st, err);
}

int
talos_call_source(const struct talos_target *t, const char *method,
		  const struct grpc_source *src, struct grpc_result *res,
		  struct talos_status *st, struct err *err)
{
	struct stream_io io = { NULL, NULL, src };

	return call_any(t, method, NULL, 0, NULL, 0, &io, res, st, err);
}

/* A proxied reply may carry a backend's error in its metadata. */
static int
check_meta(const Common__Metadata *m, const char *method,
	   const struct talos_target *t, struct talos_status *st,
	   struct err *err)
{
	if (!m || !m->error || !m->error[0])
		return 0;
	if (st)
		st->code = m->status ? m->status->code : GRPC_UNKNOWN;
	return err_set(err, ERR_FAIL, "%s on %s: %s%s%s", method, t->addr,
		       m->error, m->hostname && m->hostname[0] ? " (from " : "",
		       m->hostname && m->hostname[0] ? m->hostname : "");
}

/* The single message of a unary reply, or an error. */
int
talos_one_msg(const struct grpc_result *res, const char *method,
	      const struct talos_target *t, struct err *err)
{
	if (res->n_msgs != 1)
		return err_set(err, ERR_FAIL, "%s on %s: expected one reply "
			       "message, got %zu", method, t->addr, res->n_msgs);
	return 0;
}

int
talos_bad_reply(const char *method, const struct talos_target *t, struct err *err)
{
	return err_set(err, ERR_FAIL, "%s on %s: the reply does not decode",
		       method, t->addr);
}

static int
apply_mode(const struct talos_target *t, const void *cfg, size_t len,
	   enum talos_apply_mode mode, long try_s, char **details,
	   bool *reboots, struct talos_status *st, struct err *err);

int
talos_apply_configuration(const struct talos_target *t, const void *cfg,
			  size_t len, char **details, struct talos_status *st,
			  struct err *err)
{
	return apply_mode(t, cfg, len, TALOS_APPLY_AUTO, 0, details, NULL, st,
			  err);
}

int
talos_apply_configuration_reboots(const struct talos_target *t,
				  const void *cfg, size_t len, bool *reboots,
				  struct talos_status *st, struct err *err)
{
	return apply_mode(t, cfg, len, TALOS_APPLY_AUTO, 0, NULL, reboots, st,
			  err);
}

int
talos_apply_configuration_mode(const struct talos_target *t, const void *cfg,
			       size_t len, enum talos_apply_mode mode,
			       char **details, struct talos_status *st,
			       struct err *err)
{
	return apply_mode(t, cfg, len, mode, 0, details, NULL, st, err);
}

int
talos_apply_configuration_try(const struct talos_target *t, const void *cfg,
			      size_t len, long try_s, char **details,
			      struct talos_status *st, struct err *err)
{
	return apply_mode(t, cfg, len, TALOS_APPLY_AUTO, try_s > 0 ? try_s : 60,
			  details, NULL, st, err);
}

/* try_s 0: mode as given; else TRY with that try_mode_timeout. reboots
 * (may be NULL): the mode Talos used (field 3 of the reply) is REBOOT. */
static int
apply_mode(const struct talos_target *t, const void *cfg, size_t len,
	   enum talos_apply_mode mode, long try_s, char **details,
	   bool *reboots, struct talos_status *st, struct err *err)
{
	Machine__ApplyConfigurationRequest req =
		MACHINE__APPLY_CONFIGURATION_REQUEST__INIT;
	Common__Duration tmo = COMMON__DURATION__INIT;
	Machine__ApplyConfigurationResponse *resp;
	struct grpc_result res;
	unsigned char *wire;
	size_t n, i, j;
	int r;

	if (details)
		*details = NULL;
	if (reboots)
		*reboots = false;
	if (!t->creds && (!t->pin_sha256 || strlen(t->pin_sha256) != 64)) {
		/* Never an unbound maintenance-mode send (api.h). */
		if (st)
			st->code = GRPC_TRANSPORT;
		err_set(err, ERR_FAIL, "ApplyConfiguration on %s: no probed "
			"certificate to bind the maintenance-mode send to; sent "
			"nothing (probe the node first)", t->addr);
		return err_kind(err, ERRK_REFUSED, 0);
	}
	req.data.data = (uint8_t *)cfg;
	req.data.len = len;
	req.mode = mode == TALOS_APPLY_STAGED
		   ? MACHINE__APPLY_CONFIGURATION_REQUEST__MODE__STAGED
		   : mode == TALOS_APPLY_NO_REBOOT
		   ? MACHINE__APPLY_CONFIGURATION_REQUEST__MODE__NO_REBOOT
		   : MACHINE__APPLY_CONFIGURATION_REQUEST__MODE__AUTO;
	if (try_s > 0) {
		req.mode = MACHINE__APPLY_CONFIGURATION_REQUEST__MODE__TRY;
		tmo.seconds = try_s;
		req.try_mode_timeout = &tmo;
	}
	n = machine__apply_configuration_request__get_packed_size(&req);
	wire = xmalloc(n ? n : 1);
	machine__apply_configuration_request__pack(&req, wire);
	r = call(t, "ApplyConfiguration", wire, n, &res, st, err);
	OPENSSL_cleanse(wire, n);   /* the config holds the cluster's keys */
	free(wire);
	if (r < 0)
		goto out;
	if ((r = talos_one_msg(&res, "ApplyConfiguration", t, err)) < 0)
		goto out;
	resp = machine__apply_configuration_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("ApplyConfiguration", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		const Machine__ApplyConfiguration *m = resp->messages[i];

		r = check_meta(m->metadata, "ApplyConfiguration", t, st, err);
		for (j = 0; r == 0 && j < m->n_warnings; j++)
			out_note("%s: %s", t->addr, m->warnings[j]);
		if (r == 0 && details && !*details && m->mode_details &&
		    m->mode_details[0])
			*details = xstrdup(m->mode_details);
		if (r == 0 && reboots && m->mode ==
		    MACHINE__APPLY_CONFIGURATION_REQUEST__MODE__REBOOT)
			*reboots = true;
	}
	machine__apply_configuration_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_version(const struct talos_target *t, char **tag,
	      struct talos_status *st, struct err *err)
{
	Machine__VersionResponse *resp;
	struct grpc_result res;
	int r;

	*tag = NULL;
	if ((r = call(t, "Version", NULL, 0, &res, st, err)) < 0 ||
	    (r = talos_one_msg(&res, "Version", t, err)) < 0)
		goto out;
	resp = machine__version_response__unpack(NULL, res.msgs[0].len,
						 (const uint8_t *)res.msgs[0].ptr);
	if (!resp || resp->n_messages < 1) {
		if (resp)
			machine__version_response__free_unpacked(resp, NULL);
		r = talos_bad_reply("Version", t, err);
		goto out;
	}
	r = check_meta(resp->messages[0]->metadata, "Version", t, st, err);
	if (r == 0)
		*tag = xstrdup(resp->messages[0]->version &&
			       resp->messages[0]->version->tag ?
			       resp->messages[0]->version->tag : "");
	machine__version_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_probe(const struct talos_target *t, char **tag, struct talos_status *st,
	    struct err *err)
{
	struct talos_target it = *t;
	struct talos_status st2 = { 0 };
	struct err e2 = ERR_INIT;
	char *tag2 = NULL;

	*tag = NULL;
	if (t->creds) {
		if (talos_version(t, tag, st, err) == 0)
			return TALOS_UP;
		/* Refused by an alert: another CA. A hang-up right after the
		 * handshake is that too, or our node's apid going away (the
		 * reboot of an upgrade, right after its reply): the looks
		 * below tell (gone: down; still there: one more mTLS look). */
		if (st->tls == GRPC_TLS_CLIENT_REJECTED && !st->hung_up)
			return TALOS_FOREIGN;
		if (st->tls != GRPC_TLS_SERVER_UNTRUSTED &&
		    st->tls != GRPC_TLS_CLIENT_REJECTED)
			return TALOS_DOWN;
	}
	it.creds = NULL;
	if (talos_version(&it, &tag2, &st2, &e2) == 0) {
		/* Version answered to a client without credentials: no Talos
		 * does that (it needs the admin role). */
		free(tag2);
		return TALOS_FOREIGN;
	}
	if (!t->creds) {
		/* Without credentials this look is all there is. */
		*st = st2;
		*err = e2;
	}
	if (st2.maintenance) {
		memcpy(st->cert_sha256, st2.cert_sha256, sizeof(st->cert_sha256));
		return TALOS_MAINTENANCE;
	}
	/* It wants a client certificate: an installed Talos (apid), of
	 * another cluster since our CA did not verify it; or ours, which
	 * came up between the two looks (the first met the maintenance
	 * server it replaced, right after its config was applied): one
	 * more mTLS look tells. */
	if (st2.cert_requested) {
		if (t->creds) {
			struct talos_status st3 = { 0 };
			struct err e3 = ERR_INIT;

			if (talos_version(t, tag, &st3, &e3) == 0) {
				*st = st3;
				return TALOS_UP;
			}
		}
		return TALOS_FOREIGN;
	}
	if (st2.code == GRPC_TRANSPORT && st2.tls == GRPC_TLS_NONE) {
		/* Gone between the two looks (or never there): just down. */
		*st = st2;
		*err = e2;
		return TALOS_DOWN;
	}
	return TALOS_FOREIGN;
}

int
talos_bootstrap(const struct talos_target *t, bool *already,
		struct talos_status *st, struct err *err)
{
	Machine__BootstrapRequest req = MACHINE__BOOTSTRAP_REQUEST__INIT;
	Machine__BootstrapResponse *resp;
	struct talos_status local;
	struct grpc_result res;
	unsigned char wire[16];
	size_t n, i;
	int r;

	*already = false;
	if (!st)
		st = &local;
	n = machine__bootstrap_request__pack(&req, wire);
	r = call(t, "Bootstrap", wire, n, &res, st, err);
	if (r < 0 && st->code == GRPC_ALREADY_EXISTS) {
		/* etcd already holds data: bootstrapped before. */
		err_clear(err);
		*already = true;
		r = 0;
		goto out;
	}
	if (r < 0)
		goto out;
	if (res.n_msgs == 1) {
		resp = machine__bootstrap_response__unpack(
			NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
		if (!resp) {
			r = talos_bad_reply("Bootstrap", t, err);
			goto out;
		}
		for (i = 0; i < resp->n_messages && r == 0; i++)
			r = check_meta(resp->messages[i]->metadata, "Bootstrap",
				       t, st, err);
		machine__bootstrap_response__free_unpacked(resp, NULL);
		if (r < 0 && st->code == GRPC_ALREADY_EXISTS) {
			err_clear(err);
			*already = true;
			r = 0;
		}
	}
out:
	grpc_result_release(&res);
	return r;
}

int
talos_kubeconfig(const struct talos_target *t, struct buf *targz,
		 struct talos_status *st, struct err *err)
{
	struct grpc_result res;
	size_t i;
	int r;

	if ((r = call(t, "Kubeconfig", NULL, 0, &res, st, err)) < 0)
		goto out;
	for (i = 0; i < res.n_msgs && r == 0; i++) {
		Common__Data *d = common__data__unpack(
			NULL, res.msgs[i].len, (const uint8_t *)res.msgs[i].ptr);

		if (!d) {
			r = talos_bad_reply("Kubeconfig", t, err);
			break;
		}
		r = check_meta(d->metadata, "Kubeconfig", t, st, err);
		if (r == 0)
			buf_add(targz, d->bytes.data, d->bytes.len);
		common__data__free_unpacked(d, NULL);
	}
	if (r == 0 && !targz->len)
		r = err_set(err, ERR_FAIL, "Kubeconfig on %s: the node sent "
			    "nothing", t->addr);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_service(const struct talos_target *t, const char *id, char **state,
	      bool *healthy, struct talos_status *st, struct err *err)
{
	Machine__ServiceListResponse *resp;
	struct grpc_result res;
	size_t i, j;
	int r;

	*state = NULL;
	*healthy = false;
	if ((r = call(t, "ServiceList", NULL, 0, &res, st, err)) < 0 ||
	    (r = talos_one_msg(&res, "ServiceList", t, err)) < 0)
		goto out;
	resp = machine__service_list_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("ServiceList", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		const Machine__ServiceList *l = resp->messages[i];

		r = check_meta(l->metadata, "ServiceList", t, st, err);
		for (j = 0; r == 0 && j < l->n_services; j++) {
			const Machine__ServiceInfo *s = l->services[j];

			if (!s->id || strcmp(s->id, id))
				continue;
			free(*state);
			*state = xstrdup(s->state ? s->state : "");
			*healthy = s->health && s->health->healthy;
		}
	}
	machine__service_list_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_upgrade(const struct talos_target *t, const char *image, char **actor,
	      struct talos_status *st, struct err *err)
{
	Machine__UpgradeRequest req = MACHINE__UPGRADE_REQUEST__INIT;
	Machine__UpgradeResponse *resp;
	struct grpc_result res;
	unsigned char *wire;
	size_t n, i;
	int r;

	*actor = NULL;
	req.image = (char *)image;
	n = machine__upgrade_request__get_packed_size(&req);
	wire = xmalloc(n ? n : 1);
	machine__upgrade_request__pack(&req, wire);
	r = call(t, "Upgrade", wire, n, &res, st, err);
	free(wire);
	if (r < 0 || (r = talos_one_msg(&res, "Upgrade", t, err)) < 0)
		goto out;
	resp = machine__upgrade_response__unpack(NULL, res.msgs[0].len,
						 (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("Upgrade", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		const Machine__Upgrade *m = resp->messages[i];

		r = check_meta(m->metadata, "Upgrade", t, st, err);
		if (r == 0 && !*actor)
			*actor = xstrdup(m->actor_id ? m->actor_id : "");
	}
	machine__upgrade_response__free_unpacked(resp, NULL);
	if (r == 0 && !*actor)
		r = err_set(err, ERR_FAIL, "Upgrade on %s: no acknowledgement in "
			    "the reply", t->addr);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_image_pull(const struct talos_target *t, int ns, const char *ref,
		 struct talos_status *st, struct err *err)
{
	Machine__ImagePullRequest req = MACHINE__IMAGE_PULL_REQUEST__INIT;
	Machine__ImagePullResponse *resp;
	struct grpc_result res;
	unsigned char *wire;
	size_t n, i;
	int r;

	req.namespace_ = (Common__ContainerdNamespace)ns;
	req.reference = (char *)ref;
	n = machine__image_pull_request__get_packed_size(&req);
	wire = xmalloc(n ? n : 1);
	machine__image_pull_request__pack(&req, wire);
	r = call(t, "ImagePull", wire, n, &res, st, err);
	free(wire);
	if (r < 0 || (r = talos_one_msg(&res, "ImagePull", t, err)) < 0)
		goto out;
	resp = machine__image_pull_response__unpack(NULL, res.msgs[0].len,
						    (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("ImagePull", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++)
		r = check_meta(resp->messages[i]->metadata, "ImagePull", t, st, err);
	machine__image_pull_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return r;
}

int
talos_boot_id(const struct talos_target *t, char *out, size_t len,
	      struct talos_status *st, struct err *err)
{
	Machine__ReadRequest req = MACHINE__READ_REQUEST__INIT;
	struct grpc_result res;
	struct buf b = BUF_INIT;
	unsigned char wire[64];
	size_t n, i;
	int r;

	out[0] = 0;
	req.path = (char *)"/proc/sys/kernel/random/boot_id";
	n = machine__read_request__get_packed_size(&req);
	if (n > sizeof(wire))
		return err_set(err, ERR_FAIL, "Read: request too large");
	machine__read_request__pack(&req, wire);
	if ((r = call(t, "Read", wire, n, &res, st, err)) < 0)
		goto out;
	for (i = 0; i < res.n_msgs && r == 0; i++) {
		Common__Data *d = common__data__unpack(
			NULL, res.msgs[i].len, (const uint8_t *)res.msgs[i].ptr);

		if (!d) {
			r = talos_bad_reply("Read", t, err);
			break;
		}
		r = check_meta(d->metadata, "Read", t, st, err);
		if (r == 0)
			buf_add(&b, d->bytes.data, d->bytes.len);
		common__data__free_unpacked(d, NULL);
	}
	while (r == 0 && b.len && (b.ptr[b.len - 1] == '\n' ||
				   b.ptr[b.len - 1] == ' '))
		b.len--;
	if (r == 0 && (!b.len || b.len >= len))
		r = err_set(err, ERR_FAIL, "Read %s on %s: %zu bytes, not a boot "
			    "id", req.path, t->addr, b.len);
	if (r == 0) {
		memcpy(out, b.ptr, b.len);
		out[b.len] = 0;
	}
out:
	buf_release(&b);
	grpc_result_release(&res);
	return r;
}

int
talos_check_meta(const void *meta, const char *method,
		 const struct talos_target *t, struct talos_status *st,
		 struct err *err)
{
	return check_meta(meta, method, t, st, err);
}

/* ------------------------------------------------------------- COSI */

#define COSI_LIST "/cosi.resource.State/List"

void
talos_resources_free(struct talos_resource *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++) {
		free(v[i].id);
		free(v[i].version);
		if (v[i].yaml) {
			OPENSSL_cleanse(v[i].yaml, strlen(v[i].yaml));
			free(v[i].yaml);
		}
	}
	free(v);
}

int
talos_resource_list(const struct talos_target *t, const char *ns,
		    const char *type, struct talos_resource **out, size_t *n,
		    struct talos_status *st, struct err *err)
{
	Cosi__Resource__ListRequest req = COSI__RESOURCE__LIST_REQUEST__INIT;
	struct grpc_result res;
	struct buf b = BUF_INIT;
	size_t i;
	int r;

	*out = NULL;
	*n = 0;
	req.namespace_ = (char *)ns;
	req.type = (char *)type;
	buf_grow(&b, cosi__resource__list_request__get_packed_size(&req));
	b.len = cosi__resource__list_request__pack(&req, (uint8_t *)b.ptr);
	r = call(t, COSI_LIST, b.ptr, b.len, &res, st, err);
	buf_release(&b);
	if (r < 0) {
		err_wrap(err, "list %s %s", ns, type);
		goto out;
	}
	*out = xcalloc(res.n_msgs + 1, sizeof(**out));
	for (i = 0; i < res.n_msgs; i++) {
		Cosi__Resource__ListResponse *m = cosi__resource__list_response__unpack(
			NULL, res.msgs[i].len, (const uint8_t *)res.msgs[i].ptr);
		const Cosi__Resource__Resource *rs = m ? m->resource : NULL;

		if (!m || !rs || !rs->metadata || !rs->metadata->id ||
		    !rs->metadata->id[0]) {
			if (m)
				cosi__resource__list_response__free_unpacked(m, NULL);
			r = talos_bad_reply(COSI_LIST, t, err);
			break;
		}
		(*out)[*n].id = xstrdup(rs->metadata->id);
		(*out)[*n].version = xstrdup(rs->metadata->version ?
					     rs->metadata->version : "");
		(*out)[*n].yaml = xstrdup(rs->spec && rs->spec->yaml_spec ?
					  rs->spec->yaml_spec : "");
		(*n)++;
		if (rs->spec && rs->spec->yaml_spec)
			OPENSSL_cleanse(rs->spec->yaml_spec, strlen(rs->spec->yaml_spec));
		cosi__resource__list_response__free_unpacked(m, NULL);
	}
	if (r < 0) {
		talos_resources_free(*out, *n);
		*out = NULL;
		*n = 0;
	}
out:
	for (i = 0; i < res.n_msgs; i++)      /* specs may hold secrets */
		OPENSSL_cleanse(res.msgs[i].ptr, res.msgs[i].len);
	grpc_result_release(&res);
	return r;
}
