#include "provider/proxmox/proxmox.h"

#include <ctype.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util/clock.h"
#include "util/http.h"
#include "util/proc.h"

struct pve {
	struct http_client *http;    /* own client, until given to conns */
	struct pve_conns *conns;
	struct pve_opts opts;        /* to make another client (pooled) */
	long poll_ms;
	char *token_id;              /* user@realm!name (not a secret), for 401/403 */
};

/* At most this many requests in flight to the endpoint at once (each on
 * its own connection), unless a command asks for more with
 * pve_conns_width (its --parallel); more wait for one to come back.
 * pveproxy serves a few worker processes; 200 connections opened at
 * once only queue there (and cost a TLS handshake each). */
#define CONNS_DEFAULT 32
/* The most a command may ask for. With 1 request per VM before its
 * first task, N VMs' first requests go out in ceil(N / width) rounds
 * of one call's latency: at 200 VMs 7 rounds with 32, 2 with 100
 * (docs/plan.md, issue 13, fourth pass). */
#define CONNS_MAX 128
#define WARM_MAX CONNS_MAX

struct pve_conns {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct http_client *idle[CONNS_MAX];
	size_t n;                    /* idle */
	size_t busy;                 /* requests in flight */
	struct http_share *share;
	size_t warming;              /* connections being opened (conn_take) */
	size_t want;                 /* warm up to this many (pve_conns_warm_for) */
	size_t cap;                  /* requests in flight at most (pve_conns_width) */
};

/* --- params ------------------------------------------------------------- */

void
pve_params_init(struct pve_params *p)
{
	buf_init(&p->body);
}

void
pve_params_release(struct pve_params *p)
{
	buf_release(&p->body);
}

void
pve_params_add(struct pve_params *p, const char *key, const char *value)
{
	if (p->body.len)
		buf_addch(&p->body, '&');
	http_urlencode(&p->body, key);
	buf_addch(&p->body, '=');
	http_urlencode(&p->body, value);
}

void
pve_params_addf(struct pve_params *p, const char *key, const char *fmt, ...)
{
	struct buf v = BUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	buf_vaddf(&v, fmt, ap);
	va_end(ap);
	pve_params_add(p, key, v.ptr);
	buf_release(&v);
}

/* --- client ------------------------------------------------------------- */

struct pve_conns *
pve_conns_new(void)
{
	struct pve_conns *c = xcalloc(1, sizeof(*c));

	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->share = http_share_new();
	c->cap = CONNS_DEFAULT;
	return c;
}

void
pve_conns_width(struct pve_conns *c, size_t n)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->cap = n < CONNS_DEFAULT ? CONNS_DEFAULT : n > CONNS_MAX ? CONNS_MAX : n;
	if (c->want > c->cap)
		c->want = c->cap;
	pthread_mutex_unlock(&c->mu);
}

size_t
pve_width(const struct pve *p)
{
	size_t n;

	if (!p || !p->conns)
		return CONNS_DEFAULT;
	pthread_mutex_lock(&p->conns->mu);
	n = p->conns->cap;
	pthread_mutex_unlock(&p->conns->mu);
	return n;
}

void
pve_conns_warm_for(struct pve_conns *c, size_t n)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->want = n < c->cap ? n : c->cap;
	pthread_mutex_unlock(&c->mu);
}

void
pve_conns_free(struct pve_conns *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++)
		http_client_free(c->idle[i]);
	http_share_free(c->share);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* One more client of o (the auth header exists only while it is made). */
static int
client_new(struct http_client **out, const struct pve_opts *o, struct err *err)
{
	struct http_opts ho = { 0 };
	char *base, *auth;
	int r;

	base = xasprintf("%s%sapi2/json", o->endpoint,
			 o->endpoint[strlen(o->endpoint) - 1] == '/' ? "" : "/");
	auth = xasprintf("Authorization: PVEAPIToken=%s=%s", o->token_id,
			 o->token_secret);
	ho.base_url = base;
	ho.ca_file = o->ca_file;
	ho.fingerprint = o->fingerprint;
	ho.insecure = o->insecure;
	ho.auth_header = auth;
	ho.share = o->conns ? o->conns->share : NULL;
	r = http_client_new(out, &ho, err);
	/* libcurl's header list has its own copy (wiped when the client
	 * is freed); wipe ours. */
	secret_strfree(auth);
	free(base);
	return r;
}

int
pve_new(struct pve **out, const struct pve_opts *o, struct err *err)
{
	struct pve *p;
	int r;

	*out = NULL;
	if (!o->endpoint || !o->token_id || !o->token_secret)
		return err_set(err, ERR_USAGE,
			       "proxmox: endpoint, token id and secret are needed");
	p = xcalloc(1, sizeof(*p));
	p->poll_ms = o->poll_ms > 0 ? o->poll_ms : 0;
	p->token_id = xstrdup(o->token_id);
	p->opts = *o;
	p->conns = o->conns;
	/* Made now, so a bad endpoint or pin fails here, not mid-phase. */
	if ((r = client_new(&p->http, o, err)) < 0) {
		free(p->token_id);
		free(p);
		return err_wrap(err, "proxmox");
	}
	*out = p;
	return 0;
}

/*
 * Warming. When the VM phase goes wide, up to the width's requests start at
 * once; each one that finds no idle connection in the set opens its own,
 * so tens of TLS handshakes would land on the phase's critical path (the
 * simulator does them one at a time). The requests before it (preflight,
 * listings) come one at a time: when one is alone in flight on a
 * connection of the set, and the set holds fewer than WARM_MAX in all,
 * threads open the rest, one each, while that request runs; it joins
 * them before it returns. On a set connection, not the first request's
 * own: by then the share holds a TLS session, so theirs are resumed
 * handshakes (from the first request they were all full ones, measured
 * slower in destroy). A request that finds no idle connection while they
 * are at work waits for one of theirs instead of opening another.
 *
 * Joined by the request that started them, never left running: strata
 * forks (isolate_run, Talos generation) only at moments with no other
 * thread, and a fork while a warm thread held malloc's lock left the
 * child stuck (seen with ASan, background warming).
 *
 * Opening one means a real request on it: a connection libcurl made with
 * CURLOPT_CONNECT_ONLY is never reused by a later transfer (its
 * connection cache skips connect-only connections), and a new curl handle
 * has no connection at all (it connects on its first request: the cost
 * moved, not saved). So each warm client sends GET /version (any token may
 * read it; it changes nothing) and joins the set only after a 2xx answer,
 * i.e. with a verified, handshaken, kept-alive connection.
 *
 * Only for a phase about to go wide: pve_conns_warm_for says how many
 * requests it may have in flight (apply, from its plan; a plan, a status,
 * a destroy or a 1-VM apply warms nothing).
 *
 * Bounded: a round starts only with no other request in flight and no
 * round running, and opens that many (at most WARM_MAX) minus the
 * connections idle and busy,
 * so no more connections are open than requests can be in flight; a warm
 * client that finds the set full is freed. A set already full (the usual
 * case once the preflight ran) warms nothing.
 */
struct warm {
	pthread_t t[WARM_MAX];
	size_t n;                    /* threads started */
	struct pve_conns *conns;
	const struct pve_opts *opts; /* the request's pve's: alive until joined */
};

static void *
warm_one(void *arg)
{
	struct warm *w = arg;
	struct pve_conns *c = w->conns;
	struct http_client *h = NULL;
	struct http_response resp;
	struct err e = ERR_INIT;

	http_response_init(&resp);
	if (client_new(&h, w->opts, &e) == 0 &&
	    (http_request(h, "GET", "/version", NULL, NULL, 0, 0, &resp, &e) < 0 ||
	     resp.status < 200 || resp.status > 299)) {
		/* not warm: the request that needs one will say why */
		http_client_free(h);
		h = NULL;
	}
	err_clear(&e);
	http_response_release(&resp);
	pthread_mutex_lock(&c->mu);
	c->warming--;
	if (h && c->n < CONNS_MAX) {
		c->idle[c->n++] = h;
		h = NULL;
	}
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	http_client_free(h);
	return NULL;
}

/* Start k threads; c->warming is k + 1, the 1 ours until they are
 * started (no other round begins meanwhile). */
static void
warm_start(struct pve *p, struct warm *w, size_t k)
{
	struct pve_conns *c = p->conns;

	w->conns = c;
	w->opts = &p->opts;
	for (w->n = 0; w->n < k; w->n++)
		if (pthread_create(&w->t[w->n], NULL, warm_one, w))
			break;
	pthread_mutex_lock(&c->mu);
	c->warming -= 1 + (k - w->n);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void
warm_join(struct warm *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		pthread_join(w->t[i], NULL);
	w->n = 0;
}

/* The client for one request: an idle shared one, else our own, else a
 * new one (ours went to the shared set after an earlier request); with
 * the width's requests in flight, after one of them is done. A request
 * alone in flight may start a round of warming (w, above). */
static void conn_give(struct pve *p, struct http_client *h, struct warm *w);

static int
conn_take(struct pve *p, struct http_client **h, struct warm *w,
	  struct err *err)
{
	struct pve_conns *c = p->conns;
	size_t k = 0;

	*h = NULL;
	w->n = 0;
	if (c) {
		pthread_mutex_lock(&c->mu);
		while (c->busy >= c->cap)
			pthread_cond_wait(&c->cv, &c->mu);
		c->busy++;
		/* a connection on its way: wait for it rather than open one */
		while (!c->n && c->warming)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->n)
			*h = c->idle[--c->n];
		if (*h && c->busy == 1 && !c->warming &&
		    c->n + 1 < c->want) {
			/* +1: this request's connection */
			k = c->want - c->n - 1;
			c->warming = k + 1;
		}
		pthread_mutex_unlock(&c->mu);
	}
	if (k)
		warm_start(p, w, k);
	if (!*h && p->http) {
		*h = p->http;
		p->http = NULL;
	}
	if (!*h && client_new(h, &p->opts, err) < 0) {
		conn_give(p, NULL, w);
		return err_wrap(err, "proxmox");
	}
	return 0;
}

/* After the request (h NULL: none was made): the warm threads it started
 * are joined (while it still counts as in flight, so no other round
 * starts), then h goes to the shared set, its connection open for the
 * next request of any client. */
static void
conn_give(struct pve *p, struct http_client *h, struct warm *w)
{
	warm_join(w);
	if (p->conns) {
		pthread_mutex_lock(&p->conns->mu);
		p->conns->busy--;
		if (h && p->conns->n < CONNS_MAX) {
			p->conns->idle[p->conns->n++] = h;
			h = NULL;
		}
		/* while warming, some wait for an idle connection rather
		 * than for a free slot: wake both kinds */
		if (p->conns->warming)
			pthread_cond_broadcast(&p->conns->cv);
		else
			pthread_cond_signal(&p->conns->cv);
		pthread_mutex_unlock(&p->conns->mu);
	}
	if (h && !p->http)
		p->http = h;
	else if (h)
		http_client_free(h);
}

/* Has h made a connection (kept alive, or remade on its next request)? */
static bool
connected(const struct http_client *h)
{
	struct http_stats st;

	http_client_stats(h, &st);
	return st.connects > 0;
}

void
pve_free(struct pve *p)
{
	if (!p)
		return;
	/* Kept for the other clients, if room and if connected: a client
	 * that never sent a request (a VM job's own, when the set served
	 * all its requests) would only cost the request that takes it a
	 * handshake. */
	if (p->http && p->conns && connected(p->http)) {
		pthread_mutex_lock(&p->conns->mu);
		if (p->conns->n < CONNS_MAX) {
			p->conns->idle[p->conns->n++] = p->http;
			p->http = NULL;
		}
		pthread_mutex_unlock(&p->conns->mu);
	}
	http_client_free(p->http);
	free(p->token_id);
	free(p);
}

int
pve_error_from_response(struct err *err, const char *method, const char *path,
			long status, const char *reason, const char *body,
			const char *token_id)
{
	struct buf msg = BUF_INIT;
	json_t *root = body && *body ? json_loads(body, 0, NULL) : NULL;
	json_t *m = root ? json_object_get(root, "message") : NULL;
	json_t *errors = root ? json_object_get(root, "errors") : NULL;
	/* 401/403 are answers from the server: a runtime failure (exit 1), like
	 * every other; exit 2 is for what strata finds before contacting any */
	int code = ERR_FAIL;
	int r;

	if (json_is_string(m)) {
		buf_adds(&msg, json_string_value(m));
	} else if (reason && *reason) {
		buf_adds(&msg, reason);
	} else {
		buf_adds(&msg, "no message");
	}
	while (msg.len && (msg.ptr[msg.len - 1] == '\n' || msg.ptr[msg.len - 1] == ' '))
		msg.ptr[--msg.len] = '\0';
	if (json_is_object(errors)) {
		const char *k;
		json_t *v;
		int first = 1;

		buf_adds(&msg, " (");
		json_object_foreach(errors, k, v) {
			const char *why = json_is_string(v) ? json_string_value(v)
							    : "invalid";
			size_t wl = strlen(why);

			while (wl && (why[wl - 1] == '\n' || why[wl - 1] == ' '))
				wl--;
			buf_addf(&msg, "%s%s: %.*s", first ? "" : "; ", k,
				 (int)wl, why);
			first = 0;
		}
		buf_adds(&msg, ")");
	}
	if (status == 401)
		buf_addf(&msg, "; check proxmox.token_id ('%s') and token_secret: "
			 "the token must exist and the secret be its own",
			 token_id ? token_id : "?");
	else if (status == 403)
		buf_addf(&msg, "; the API token '%s' (proxmox.token_id) lacks the "
			 "privilege named above on that path: grant it a role "
			 "that has it (with privilege separation, on the token "
			 "itself: pveum acl modify PATH --tokens '%s' --roles "
			 "ROLE)", token_id ? token_id : "?",
			 token_id ? token_id : "TOKEN_ID");
	err_set(err, code, "%s %s: HTTP %ld: %s", method, path, status, msg.ptr);
	/* The server answered: callers read the status, not the text. */
	r = err_kind(err, ERRK_HTTP_STATUS, status);
	buf_release(&msg);
	json_decref(root);
	return r;
}

/*
 * Node, storage and VM names from the config or from API answers are put
 * into paths: refuse an empty, "." or ".." segment (curl would resolve
 * it: /nodes/../access) and any character that is not plain in a path
 * segment ('?', '#', '/', spaces, controls). Task ids are percent-encoded.
 */
static int
check_path(const char *method, const char *path, struct err *err)
{
	const char *s = path;

	if (*s != '/')
		return err_set(err, ERR_FAIL, "%s '%s': not an API path", method, path);
	while (*s == '/') {
		const char *seg = ++s;
		size_t n;

		while (*s && *s != '/') {
			unsigned char ch = (unsigned char)*s;

			if (!isalnum(ch) && !strchr("._-~:@=+%!", ch))
				return err_set(err, ERR_FAIL, "%s: refusing a name "
					       "with '%c' (0x%02x) in a URL path; node and "
					       "storage names are letters, digits, '.', "
					       "'-' and '_'", method,
					       isprint(ch) ? ch : '?', ch);
			s++;
		}
		n = (size_t)(s - seg);
		if (!n || (n == 1 && seg[0] == '.') || (n == 2 && !strncmp(seg, "..", 2)))
			return err_set(err, ERR_FAIL, "%s %s: refusing an empty, '.' "
				       "or '..' name in a URL path", method, path);
	}
	return 0;
}

static int call(struct pve *p, const char *method, const char *path,
		const char *full, const char *content_type, const void *body,
		size_t len, json_t **data_out, struct err *err);

int
pve_call(struct pve *p, const char *method, const char *path,
	 const struct pve_params *params, json_t **data_out, struct err *err)
{
	bool in_query = !strcmp(method, "GET") || !strcmp(method, "DELETE");
	bool has = params && params->body.len;
	char *full;
	int r;

	if (data_out)
		*data_out = NULL;
	if ((r = check_path(method, path, err)) < 0)
		return r;
	full = in_query && has ? xasprintf("%s?%s", path, params->body.ptr)
			       : xstrdup(path);
	r = call(p, method, path, full,
		 in_query ? NULL : "application/x-www-form-urlencoded",
		 in_query || !has ? NULL : params->body.ptr,
		 in_query || !has ? 0 : params->body.len, data_out, err);
	free(full);
	return r;
}

int
pve_call_body(struct pve *p, const char *method, const char *path,
	      const char *content_type, const void *body, size_t len,
	      json_t **data_out, struct err *err)
{
	int r;

	if (data_out)
		*data_out = NULL;
	if ((r = check_path(method, path, err)) < 0)
		return r;
	return call(p, method, path, path, content_type, body, len, data_out,
		    err);
}

/* METHOD full (path and query); messages name path, never the query. */
static int
call(struct pve *p, const char *method, const char *path, const char *full,
     const char *content_type, const void *body, size_t len,
     json_t **data_out, struct err *err)
{
	struct http_response resp;
	json_error_t je;
	json_t *root;
	struct http_client *h;
	struct warm w;
	int r;

	http_response_init(&resp);
	if ((r = conn_take(p, &h, &w, err)) < 0)
		goto out;
	/* A sync 500 means no task started: nothing happened. */
	r = http_request(h, method, full, content_type, body, len,
			 HTTP_RETRY_500, &resp, err);
	conn_give(p, h, &w);
	if (r < 0)
		goto out;
	if (resp.status < 200 || resp.status > 299) {
		r = pve_error_from_response(err, method, path, resp.status,
					    resp.reason, resp.body.ptr, p->token_id);
		goto out;
	}
	root = json_loadb(resp.body.ptr, resp.body.len, 0, &je);
	if (!root || !json_is_object(root)) {
		r = err_set(err, ERR_FAIL, "%s %s: response is not a JSON "
			    "envelope: %s", method, path,
			    root ? "not an object" : je.text);
		json_decref(root);
		goto out;
	}
	if (data_out) {
		json_t *d = json_object_get(root, "data");

		*data_out = d ? json_incref(d) : json_null();
	}
	json_decref(root);
out:
	http_response_release(&resp);
	return r;
}

/* --- typed calls -------------------------------------------------------- */

char *
pve_json_str(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_string(v))
		return xstrdup(json_string_value(v));
	if (json_is_integer(v))
		return xasprintf("%lld", (long long)json_integer_value(v));
	return NULL;
}

static long long
jint(json_t *o, const char *key)
{
	json_t *v = json_object_get(o, key);

	if (json_is_integer(v))
		return (long long)json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	if (json_is_string(v))
		return strtoll(json_string_value(v), NULL, 10);
	return 0;
}

static bool
jint_is_true(json_t *v)
{
	return (json_is_integer(v) && json_integer_value(v) != 0) ||
	       json_is_true(v) ||
	       (json_is_string(v) && strcmp(json_string_value(v), "0"));
}

void
pve_vms_free(struct pve_vm *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++) {
		free(v[i].node);
		free(v[i].name);
		free(v[i].status);
		free(v[i].tags);
		free(v[i].lock);
	}
	free(v);
}

int
pve_cluster_vms(struct pve *p, struct pve_vm **out, size_t *n, struct err *err)
{
	struct pve_params q;
	json_t *data = NULL, *e;
	size_t i, k = 0;
	int r;

	*out = NULL;
	*n = 0;
	pve_params_init(&q);
	pve_params_add(&q, "type", "vm");
	r = pve_call(p, "GET", "/cluster/resources", &q, &data, err);
	pve_params_release(&q);
	if (r < 0)
		return r;
	if (!json_is_array(data)) {
		json_decref(data);
		return err_set(err, ERR_FAIL,
			       "GET /cluster/resources: expected a list");
	}
	*out = xcalloc(json_array_size(data) + 1, sizeof(**out));
	json_array_foreach(data, i, e) {
		struct pve_vm *v = &(*out)[k];
		char *type = pve_json_str(e, "type");

		if (!type || strcmp(type, "qemu")) {
			free(type);
			continue;
		}
		free(type);
		v->vmid = (int)jint(e, "vmid");
		v->node = pve_json_str(e, "node");
		v->name = pve_json_str(e, "name");
		v->status = pve_json_str(e, "status");
		v->tags = pve_json_str(e, "tags");
		v->lock = pve_json_str(e, "lock");
		v->template = jint(e, "template") != 0;
		v->maxmem = jint(e, "maxmem");
		v->maxcpu = (int)jint(e, "maxcpu");
		v->maxdisk = jint(e, "maxdisk");
		k++;
	}
	*n = k;
	json_decref(data);
	return 0;
}

int
pve_version(struct pve *p, char **out, struct err *err)
{
	json_t *data = NULL;
	int r = pve_call(p, "GET", "/version", NULL, &data, err);

	*out = NULL;
	if (r == 0) {
		*out = pve_json_str(data, "version");
		if (!*out)
			r = err_set(err, ERR_FAIL, "GET /version: no version in answer");
	}
	json_decref(data);
	return r;
}

static int
upid_call(struct pve *p, const char *method, const char *path,
	  const struct pve_params *params, char **upid_out, struct err *err)
{
	json_t *data = NULL;
	int r = pve_call(p, method, path, params, &data, err);

	if (upid_out)
		*upid_out = NULL;
	if (r < 0)
		return r;
	if (json_is_string(data) && !strncmp(json_string_value(data), "UPID:", 5)) {
		if (upid_out)
			*upid_out = xstrdup(json_string_value(data));
	} else if (!json_is_null(data)) {
		r = err_set(err, ERR_FAIL, "%s %s: expected a task id", method, path);
	}
	json_decref(data);
	return r;
}

int
pve_vm_create(struct pve *p, const char *node, const struct pve_params *params,
	      char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu", node);
	int r = upid_call(p, "POST", path, params, upid_out, err);

	free(path);
	return r;
}

int
pve_vm_config_post(struct pve *p, const char *node, int vmid,
		   const struct pve_params *params, char **upid_out,
		   struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/config", node, vmid);
	int r = upid_call(p, "POST", path, params, upid_out, err);

	free(path);
	return r;
}

int
pve_vm_config_get(struct pve *p, const char *node, int vmid, json_t **out,
		  struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/config", node, vmid);
	int r = pve_call(p, "GET", path, NULL, out, err);

	free(path);
	return r;
}

int
pve_vm_power(struct pve *p, const char *node, int vmid, const char *action,
	     const struct pve_params *params, char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/status/%s", node, vmid, action);
	int r = upid_call(p, "POST", path, params, upid_out, err);

	free(path);
	return r;
}

int
pve_vm_status(struct pve *p, const char *node, int vmid, char **status_out,
	      struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/status/current", node, vmid);
	json_t *data = NULL;
	int r = pve_call(p, "GET", path, NULL, &data, err);

	*status_out = NULL;
	if (r == 0 && !(*status_out = pve_json_str(data, "status")))
		r = err_set(err, ERR_FAIL, "GET %s: no status in answer", path);
	json_decref(data);
	free(path);
	return r;
}

int
pve_node_vms(struct pve *p, const char *node, json_t **out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu", node);
	int r = pve_call(p, "GET", path, NULL, out, err);

	if (r == 0 && !json_is_array(*out)) {
		json_decref(*out);
		*out = NULL;
		r = err_set(err, ERR_FAIL, "GET %s: expected a list", path);
	}
	free(path);
	return r;
}

const char *
pve_node_vms_status(json_t *list, int vmid)
{
	json_t *e;
	size_t i;

	json_array_foreach(list, i, e)
		if (json_integer_value(json_object_get(e, "vmid")) == vmid)
			return json_string_value(json_object_get(e, "status"));
	return NULL;
}

int
pve_vm_delete(struct pve *p, const char *node, int vmid, bool purge,
	      char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d", node, vmid);
	struct pve_params q;
	int r;

	pve_params_init(&q);
	if (purge) {
		pve_params_add(&q, "purge", "1");
		pve_params_add(&q, "destroy-unreferenced-disks", "1");
	}
	r = upid_call(p, "DELETE", path, &q, upid_out, err);
	if (r < 0) {
		/* A DELETE whose reply was lost is retried (idempotent); the
		 * retry then fails because the first one did its work. A VM
		 * that is gone from the cluster's list is what was asked for. */
		struct pve_vm *vms = NULL;
		struct err e2 = ERR_INIT;
		size_t n = 0, i;
		bool gone = false;

		if (pve_cluster_vms(p, &vms, &n, &e2) == 0) {
			gone = true;
			for (i = 0; i < n; i++)
				if (vms[i].vmid == vmid)
					gone = false;
		}
		pve_vms_free(vms, n);
		if (gone) {
			err_clear(err);
			r = 0;
		}
	}
	pve_params_release(&q);
	free(path);
	return r;
}

int
pve_vm_wait_destroyed(struct pve *p, int vmid, long long timeout_ms,
		      struct err *err)
{
	long long end = clock_mono_ms() + timeout_ms;

	for (;;) {
		struct pve_vm *vms = NULL;
		struct err e = ERR_INIT;
		size_t n = 0, i;
		bool gone = true, destroying = false;

		if (proc_interrupted)
			break;
		if (pve_cluster_vms(p, &vms, &n, &e) < 0) {
			if (proc_interrupted)
				break;
			return -1;
		}
		for (i = 0; i < n; i++)
			if (vms[i].vmid == vmid) {
				gone = false;
				destroying = vms[i].lock &&
					     !strcmp(vms[i].lock, "destroyed");
			}
		pve_vms_free(vms, n);
		if (gone)
			return 0;
		/* Any other state: the destroy did not happen. */
		if (!destroying || clock_mono_ms() >= end)
			return -1;
		if (!proc_sleep_ms(250))
			break;
	}
	return err_set(err, ERR_INTR, "interrupted while waiting for vm %d "
		       "to be destroyed", vmid);
}

int
pve_vm_stop_and_delete(struct pve **pve, const char *node, int vmid,
		       const char *name, const struct pve_vm_removal *how,
		       struct err *err)
{
	struct pve_params p;
	char *upid = NULL;
	int r;

	if (how->step)
		how->step(how->ctx, "hard stop");
	pve_params_init(&p);
	pve_params_add(&p, "overrule-shutdown", "1");
	r = pve_vm_power(*pve, node, vmid, "stop", &p, &upid, err);
	pve_params_release(&p);
	if (r < 0 || (r = how->wait(how->ctx, *pve, upid, err)) < 0)
		return err_wrap(err, "stop vm '%s'", name);
	if (how->between && (r = how->between(how->ctx, pve, err)) < 0)
		return err_wrap(err, "vm '%s'", name);
	if (how->step)
		how->step(how->ctx, "deleting with purge");
	upid = NULL;
	if ((r = pve_vm_delete(*pve, node, vmid, true, &upid, err)) < 0 ||
	    (r = how->wait(how->ctx, *pve, upid, err)) < 0) {
		/* A retried DELETE that met the first one still destroying
		 * (lock: destroyed): wait for that one, it is what was asked. */
		if (pve_vm_wait_destroyed(*pve, vmid, how->timeout_ms, err) < 0)
			return err_wrap(err, "delete vm '%s'", name);
		err_clear(err);
	}
	return 0;
}

int
pve_vm_resize(struct pve *p, const char *node, int vmid, const char *disk,
	      const char *size, char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/resize", node, vmid);
	struct pve_params q;
	int r;

	pve_params_init(&q);
	pve_params_add(&q, "disk", disk);
	pve_params_add(&q, "size", size);
	r = upid_call(p, "PUT", path, &q, upid_out, err);
	pve_params_release(&q);
	free(path);
	return r;
}

int
pve_agent_ipv4(struct pve *p, const char *node, int vmid, const char *mac,
	       char **ip_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/agent/network-get-interfaces",
			       node, vmid);
	json_t *data = NULL, *ifs, *iface;
	size_t i;
	int r;

	*ip_out = NULL;
	r = pve_call(p, "GET", path, NULL, &data, err);
	if (r < 0)
		goto out;
	ifs = json_object_get(data, "result");
	json_array_foreach(ifs, i, iface) {
		const char *hw = json_string_value(json_object_get(iface, "hardware-address"));
		json_t *addrs = json_object_get(iface, "ip-addresses"), *a;
		size_t j;

		const char *name = json_string_value(json_object_get(iface, "name"));

		if (mac && (!hw || strcasecmp(hw, mac)))
			continue;
		/* The loopback interface; any address on a real NIC counts
		 * (the lab simulator's NICs carry 127.0.x.y addresses). */
		if ((name && !strcmp(name, "lo")) ||
		    (hw && !strcmp(hw, "00:00:00:00:00:00")))
			continue;
		json_array_foreach(addrs, j, a) {
			const char *t = json_string_value(json_object_get(a, "ip-address-type"));
			const char *ip = json_string_value(json_object_get(a, "ip-address"));

			if (t && ip && !strcmp(t, "ipv4") &&
			    strncmp(ip, "169.254.", 8)) {
				*ip_out = xstrdup(ip);
				goto out;
			}
		}
	}
	r = err_set(err, ERR_NOTFOUND, "vm %d: the guest agent reports no IPv4 "
		    "address%s%s yet", vmid, mac ? " on " : "", mac ? mac : "");
out:
	json_decref(data);
	free(path);
	return r;
}

int
pve_storage_has(struct pve *p, const char *node, const char *storage,
		const char *content, const char *volid, bool *has,
		struct err *err)
{
	char **v = NULL;
	size_t i, n = 0;
	int r;

	*has = false;
	r = pve_storage_volids(p, node, storage, content, &v, &n, err);
	for (i = 0; i < n; i++)
		if (!strcmp(v[i], volid))
			*has = true;
	pve_volids_free(v, n);
	return r;
}

int
pve_vm_pending(struct pve *p, const char *node, int vmid, json_t **out,
	       struct err *err)
{
	char *path = xasprintf("/nodes/%s/qemu/%d/pending", node, vmid);
	int r = pve_call(p, "GET", path, NULL, out, err);

	free(path);
	return r;
}

int
pve_pool_exists(struct pve *p, const char *id, bool *exists, struct err *err)
{
	json_t *data = NULL, *e;
	size_t i;
	int r;

	*exists = false;
	if ((r = pve_call(p, "GET", "/pools", NULL, &data, err)) < 0)
		return r;
	json_array_foreach(data, i, e) {
		const char *s = json_string_value(json_object_get(e, "poolid"));

		if (s && !strcmp(s, id))
			*exists = true;
	}
	json_decref(data);
	return 0;
}

int
pve_pool_create(struct pve *p, const char *id, const char *comment,
		struct err *err)
{
	struct pve_params params;
	int r;

	pve_params_init(&params);
	pve_params_add(&params, "poolid", id);
	if (comment)
		pve_params_add(&params, "comment", comment);
	r = pve_call(p, "POST", "/pools", &params, NULL, err);
	pve_params_release(&params);
	if (r < 0 && strstr(err->msg, "already exists")) {
		err_clear(err);
		return 0;
	}
	if (r < 0 && strstr(err->msg, "HTTP 403")) {
		char why[sizeof(err->msg)];

		snprintf(why, sizeof(why), "%s", err->msg);
		return err_set(err, ERR_FAIL, "%s: the token lacks Pool.Allocate on "
			       "/pool/%s, which creating the pool needs: grant it, "
			       "or create pool '%s' in Proxmox first", why, id, id);
	}
	return r;
}

int
pve_storage_shared(struct pve *p, const char *node, const char *storage,
		   bool *shared, struct err *err)
{
	char *path = xasprintf("/nodes/%s/storage", node);
	json_t *data = NULL, *e;
	size_t i;
	bool found = false;
	int r;

	*shared = false;
	r = pve_call(p, "GET", path, NULL, &data, err);
	if (r == 0) {
		json_array_foreach(data, i, e) {
			const char *s = json_string_value(json_object_get(e, "storage"));

			if (s && !strcmp(s, storage)) {
				found = true;
				*shared = jint_is_true(json_object_get(e, "shared"));
			}
		}
		if (!found)
			r = err_set(err, ERR_USAGE, "node '%s' has no storage '%s'",
				    node, storage);
	}
	json_decref(data);
	free(path);
	return r;
}

int
pve_download_url(struct pve *p, const char *node, const char *storage,
		 const char *url, const char *content, const char *filename,
		 const char *checksum_sha256, char **upid_out, struct err *err)
{
	char *path = xasprintf("/nodes/%s/storage/%s/download-url", node, storage);
	struct pve_params q;
	int r;

	pve_params_init(&q);
	pve_params_add(&q, "url", url);
	pve_params_add(&q, "content", content);
	pve_params_add(&q, "filename", filename);
	if (checksum_sha256) {
		pve_params_add(&q, "checksum", checksum_sha256);
		pve_params_add(&q, "checksum-algorithm", "sha256");
	}
	r = upid_call(p, "POST", path, &q, upid_out, err);
	pve_params_release(&q);
	free(path);
	return r;
}

/* --- tasks -------------------------------------------------------------- */

/* Field i of a UPID (1 node, 4 starttime, 5 type; FACTS.md §2), or NULL. */
static char *
upid_field(const char *upid, int i)
{
	const char *s, *e;
	int k;

	if (!upid || strncmp(upid, "UPID:", 5))
		return NULL;
	s = upid + 5;
	for (k = 1; k < i; k++) {
		if (!(s = strchr(s, ':')))
			return NULL;
		s++;
	}
	e = strchr(s, ':');
	if (!e || e == s)
		return NULL;
	return xstrndup(s, (size_t)(e - s));
}

char *
pve_upid_node(const char *upid)
{
	return upid_field(upid, 1);
}

long long
pve_upid_starttime(const char *upid)
{
	char *f = upid_field(upid, 4), *end = NULL;
	long long t = f ? strtoll(f, &end, 16) : -1;

	if (!f || !end || *end)
		t = -1;
	free(f);
	return t;
}

/*
 * How long to wait before looking at a task again, by its type (the
 * UPID's fifth field): what Proxmox does in about a second (create with
 * start, stop, destroy, config, a copy into storage) is looked at after
 * 100, 200 ms, then every 250 ms up to about a second and a half in
 * (0.1, 0.3, 0.55, 0.8, 1.05 s: a one-second task is found within a
 * quarter second of its end; with looks at 0.1, 0.3, 0.7, 1.2 s it was
 * found 0.2 to 0.3 s late, twice per VM in destroy), then every 500 ms;
 * a graceful shutdown or reboot (up to a minute) from 500 ms to every
 * 2 s; a download (minutes for an ISO) from 1 s to every 5 s.
 * STRATA_POLL_MS (pve_opts.poll_ms) caps them all.
 */
long
pve_task_delay(const struct pve *p, const char *upid, unsigned tick)
{
	static const struct {
		const char *type;
		long first, most;
		long near;        /* the cap while tick < near_ticks (0: none) */
		unsigned near_ticks;
	} kinds[] = {
		{ "download", 1000, 5000, 0, 0 },
		{ "qmshutdown", 500, 2000, 0, 0 },
		{ "qmreboot", 500, 2000, 0, 0 },
		{ "hastop", 500, 2000, 0, 0 },
		{ NULL, 100, 500, 250, 5 },
	};
	char *type = upid_field(upid, 5);
	size_t i;
	long d;

	for (i = 0; kinds[i].type && (!type || strcmp(type, kinds[i].type)); i++)
		;
	free(type);
	d = kinds[i].first << (tick < 8 ? tick : 8);
	if (kinds[i].near && tick < kinds[i].near_ticks && d > kinds[i].near)
		d = kinds[i].near;
	if (d > kinds[i].most)
		d = kinds[i].most;
	if (p && p->poll_ms > 0 && d > p->poll_ms)
		d = p->poll_ms;
	return d;
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Last few log lines, joined, for an error message. */
static void
task_log_tail(struct pve *p, const char *node, const char *eupid, struct buf *out)
{
	char *path = xasprintf("/nodes/%s/tasks/%s/log", node, eupid);
	struct pve_params q;
	struct err ignore = ERR_INIT;
	json_t *data = NULL, *e;
	size_t i, n;

	pve_params_init(&q);
	pve_params_add(&q, "start", "0");
	pve_params_add(&q, "limit", "0");
	if (pve_call(p, "GET", path, &q, &data, &ignore) == 0 && json_is_array(data)) {
		n = json_array_size(data);
		json_array_foreach(data, i, e) {
			const char *t = json_string_value(json_object_get(e, "t"));

			if (i + 4 < n || !t || !strncmp(t, "TASK ", 5))
				continue;
			buf_addf(out, "%s%s", out->len ? " | " : "", t);
		}
	}
	json_decref(data);
	pve_params_release(&q);
	free(path);
}

int
pve_task_check(struct pve *p, const char *upid, bool *stopped, struct err *err)
{
	char *node = pve_upid_node(upid);
	struct buf eupid = BUF_INIT, tail = BUF_INIT;
	json_t *data = NULL;
	char *path, *status = NULL, *exitstatus = NULL;
	int r;

	*stopped = false;
	if (!node)
		return err_set(err, ERR_FAIL, "'%s' is not a task id", upid);
	http_urlencode(&eupid, upid);
	path = xasprintf("/nodes/%s/tasks/%s/status", node, eupid.ptr);
	if ((r = pve_call(p, "GET", path, NULL, &data, err)) < 0)
		goto out;
	status = pve_json_str(data, "status");
	exitstatus = pve_json_str(data, "exitstatus");
	if (status && !strcmp(status, "stopped")) {
		*stopped = true;
		if (!exitstatus || (strcmp(exitstatus, "OK") &&
				    strncmp(exitstatus, "WARNINGS", 8))) {
			task_log_tail(p, node, eupid.ptr, &tail);
			r = err_set(err, ERR_FAIL, "task %s failed: %s%s%s",
				    upid, exitstatus ? exitstatus : "no exit status",
				    tail.len ? "; log: " : "", tail.ptr);
		}
	}
out:
	json_decref(data);
	free(status);
	free(exitstatus);
	buf_release(&tail);
	buf_release(&eupid);
	free(path);
	free(node);
	return r;
}

int
pve_task_wait(struct pve *p, const char *upid, long timeout_ms, struct err *err)
{
	long start = now_ms(), next = start, now;
	unsigned tick = 0;
	int r;

	for (;;) {
		bool stopped = false;

		if ((r = pve_task_check(p, upid, &stopped, err)) < 0 || stopped)
			return r;
		if (timeout_ms > 0 && (now = now_ms()) - start > timeout_ms)
			return err_set(err, ERR_FAIL, "task %s still running after %lds",
				       upid, timeout_ms / 1000);
		/* Back off by the task's kind (pve_task_delay), the looks
		 * counted from the start (a reply's latency does not push
		 * the next look back). Ctrl-C ends the wait (the task goes
		 * on in Proxmox; the next run finds what it did). */
		now = now_ms();
		while (next <= now)
			next += pve_task_delay(p, upid, tick++);
		if (!proc_sleep_ms(next - now))
			return err_set(err, ERR_INTR, "interrupted while waiting for "
				       "task %s (it goes on in Proxmox)", upid);
	}
}


