#include "talos/etcd.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common.pb-c.h"
#include "machine.pb-c.h"
#include "util/fs.h"
#include "util/grpc.h"

/* etcd's own hard limit for a database is 8 GiB; twice that is surely
 * not a snapshot. One message at most: Talos's 32 MiB limit. */
#define SNAP_MAX ((size_t)16 << 30)
#define MSG_MAX ((size_t)32 << 20)
#define RECOVER_CHUNK ((size_t)1 << 20)   /* well under the 32 MiB limit */

/* ----------------------------------------------------------------- ids */

void
etcd_member_id_format(uint64_t id, char out[17])
{
	snprintf(out, 17, "%016" PRIx64, id);
}

int
etcd_member_id_parse(const char *s, uint64_t *id, struct err *err)
{
	unsigned long long v;
	char *end;

	errno = 0;
	if (!s || !*s || strlen(s) > 16 || s[0] == '-' || s[0] == '+')
		goto bad;
	v = strtoull(s, &end, 16);
	if (errno || *end)
		goto bad;
	*id = (uint64_t)v;
	return 0;
bad:
	return err_set(err, ERR_USAGE, "'%s' is not an etcd member id (up to 16 "
		       "hex digits, as 'strata etcd members' shows them)",
		       s ? s : "");
}

/* ------------------------------------------------------------- helpers */

static char **
strv_dup(char **v, size_t n)
{
	char **out = xcalloc(n ? n : 1, sizeof(*out));
	size_t i;

	for (i = 0; i < n; i++)
		out[i] = xstrdup(v[i] ? v[i] : "");
	return out;
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

/* A worker answers the etcd calls Unimplemented: say what to do. */
static int
explain(int r, const char *method, const struct talos_target *t,
	struct talos_status *st, struct err *err)
{
	if (r < 0 && st->code == GRPC_UNIMPLEMENTED)
		return err_wrap(err, "%s is a control-plane call; ask a "
				"control-plane node instead of %s", method,
				t->addr);
	return r;
}

/* -------------------------------------------------------------- members */

void
etcd_members_release(struct etcd_members *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->v[i].hostname);
		strv_free(m->v[i].peer_urls, m->v[i].n_peer_urls);
		strv_free(m->v[i].client_urls, m->v[i].n_client_urls);
	}
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

const struct etcd_member *
etcd_members_find(const struct etcd_members *m, const char *hostname)
{
	size_t i;

	for (i = 0; i < m->n; i++)
		if (m->v[i].hostname && !strcmp(m->v[i].hostname, hostname))
			return &m->v[i];
	return NULL;
}

int
talos_etcd_members(const struct talos_target *t, bool query_local,
		   struct etcd_members *out, struct talos_status *st,
		   struct err *err)
{
	Machine__EtcdMemberListRequest req =
		MACHINE__ETCD_MEMBER_LIST_REQUEST__INIT;
	Machine__EtcdMemberListResponse *resp;
	struct talos_status local;
	struct grpc_result res;
	unsigned char wire[8];
	size_t n, i, j;
	int r;

	memset(out, 0, sizeof(*out));
	if (!st)
		st = &local;
	req.query_local = query_local;
	n = machine__etcd_member_list_request__pack(&req, wire);
	if ((r = talos_call(t, "EtcdMemberList", wire, n, &res, st, err)) < 0 ||
	    (r = talos_one_msg(&res, "EtcdMemberList", t, err)) < 0)
		goto out;
	resp = machine__etcd_member_list_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("EtcdMemberList", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		const Machine__EtcdMembers *ms = resp->messages[i];

		r = talos_check_meta(ms->metadata, "EtcdMemberList", t, st, err);
		for (j = 0; r == 0 && j < ms->n_members; j++) {
			const Machine__EtcdMember *m = ms->members[j];
			struct etcd_member *e;

			out->v = xrealloc(out->v, (out->n + 1) * sizeof(*out->v));
			e = &out->v[out->n++];
			e->id = m->id;
			e->hostname = xstrdup(m->hostname ? m->hostname : "");
			e->peer_urls = strv_dup(m->peer_urls, m->n_peer_urls);
			e->n_peer_urls = m->n_peer_urls;
			e->client_urls = strv_dup(m->client_urls, m->n_client_urls);
			e->n_client_urls = m->n_client_urls;
			e->learner = m->is_learner;
		}
	}
	machine__etcd_member_list_response__free_unpacked(resp, NULL);
	if (r < 0)
		etcd_members_release(out);
out:
	grpc_result_release(&res);
	return explain(r, "EtcdMemberList", t, st, err);
}

/* ------------------------------------------------- leave, remove, forfeit */

/* The replies of leave and remove: a wrapper of metadata-only messages
 * (EtcdLeaveClusterResponse and EtcdRemoveMemberByIDResponse have the
 * same shape as common.EmptyResponse on the wire). */
static int
empty_reply(const struct grpc_result *res, const char *method,
	    const struct talos_target *t, struct talos_status *st,
	    struct err *err)
{
	Common__EmptyResponse *resp;
	size_t i;
	int r = 0;

	if (res->n_msgs == 0)
		return 0;
	if ((r = talos_one_msg(res, method, t, err)) < 0)
		return r;
	resp = common__empty_response__unpack(NULL, res->msgs[0].len,
					      (const uint8_t *)res->msgs[0].ptr);
	if (!resp)
		return talos_bad_reply(method, t, err);
	for (i = 0; i < resp->n_messages && r == 0; i++)
		r = talos_check_meta(resp->messages[i]->metadata, method, t, st,
				     err);
	common__empty_response__free_unpacked(resp, NULL);
	return r;
}

int
talos_etcd_leave(const struct talos_target *t, struct talos_status *st,
		 struct err *err)
{
	struct talos_status local;
	struct grpc_result res;
	int r;

	if (!st)
		st = &local;
	if ((r = talos_call(t, "EtcdLeaveCluster", NULL, 0, &res, st, err)) == 0)
		r = empty_reply(&res, "EtcdLeaveCluster", t, st, err);
	grpc_result_release(&res);
	return explain(r, "EtcdLeaveCluster", t, st, err);
}

int
talos_etcd_remove_member(const struct talos_target *t, uint64_t id,
			 bool *not_found, struct talos_status *st,
			 struct err *err)
{
	Machine__EtcdRemoveMemberByIDRequest req =
		MACHINE__ETCD_REMOVE_MEMBER_BY_IDREQUEST__INIT;
	struct talos_status local;
	struct grpc_result res;
	unsigned char wire[16];
	char hex[17];
	size_t n;
	int r;

	if (not_found)
		*not_found = false;
	if (!st)
		st = &local;
	req.member_id = id;
	n = machine__etcd_remove_member_by_idrequest__pack(&req, wire);
	if ((r = talos_call(t, "EtcdRemoveMemberByID", wire, n, &res, st,
			    err)) == 0)
		r = empty_reply(&res, "EtcdRemoveMemberByID", t, st, err);
	grpc_result_release(&res);
	if (r < 0 && st->code == GRPC_NOT_FOUND) {
		/* already gone: what the caller wanted */
		err_clear(err);
		if (not_found)
			*not_found = true;
		return 0;
	}
	if (r < 0) {
		etcd_member_id_format(id, hex);
		err_wrap(err, "remove etcd member %s", hex);
	}
	return explain(r, "EtcdRemoveMemberByID", t, st, err);
}

int
talos_etcd_forfeit_leadership(const struct talos_target *t, char **new_leader,
			      struct talos_status *st, struct err *err)
{
	Machine__EtcdForfeitLeadershipResponse *resp;
	struct talos_status local;
	struct grpc_result res;
	size_t i;
	int r;

	*new_leader = NULL;
	if (!st)
		st = &local;
	if ((r = talos_call(t, "EtcdForfeitLeadership", NULL, 0, &res, st,
			    err)) < 0 ||
	    (r = talos_one_msg(&res, "EtcdForfeitLeadership", t, err)) < 0)
		goto out;
	resp = machine__etcd_forfeit_leadership_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("EtcdForfeitLeadership", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		const Machine__EtcdForfeitLeadership *m = resp->messages[i];

		r = talos_check_meta(m->metadata, "EtcdForfeitLeadership", t, st,
				     err);
		if (r == 0 && !*new_leader)
			*new_leader = xstrdup(m->member ? m->member : "");
	}
	machine__etcd_forfeit_leadership_response__free_unpacked(resp, NULL);
	if (r == 0 && !*new_leader)
		r = talos_bad_reply("EtcdForfeitLeadership", t, err);
	if (r < 0) {
		free(*new_leader);
		*new_leader = NULL;
	}
out:
	grpc_result_release(&res);
	return explain(r, "EtcdForfeitLeadership", t, st, err);
}

/* --------------------------------------------------------------- status */

void
etcd_status_release(struct etcd_status *s)
{
	free(s->protocol_version);
	free(s->storage_version);
	strv_free(s->errors, s->n_errors);
	memset(s, 0, sizeof(*s));
}

int
talos_etcd_status(const struct talos_target *t, struct etcd_status *out,
		  struct talos_status *st, struct err *err)
{
	Machine__EtcdStatusResponse *resp;
	const Machine__EtcdMemberStatus *ms = NULL;
	struct talos_status local;
	struct grpc_result res;
	size_t i;
	int r;

	memset(out, 0, sizeof(*out));
	if (!st)
		st = &local;
	if ((r = talos_call(t, "EtcdStatus", NULL, 0, &res, st, err)) < 0 ||
	    (r = talos_one_msg(&res, "EtcdStatus", t, err)) < 0)
		goto out;
	resp = machine__etcd_status_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("EtcdStatus", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++) {
		r = talos_check_meta(resp->messages[i]->metadata, "EtcdStatus", t,
				     st, err);
		if (r == 0 && !ms)
			ms = resp->messages[i]->member_status;
	}
	if (r == 0 && !ms)
		r = err_set(err, ERR_FAIL, "EtcdStatus on %s: the reply holds no "
			    "member status", t->addr);
	if (r == 0) {
		out->member_id = ms->member_id;
		out->leader = ms->leader;
		out->raft_index = ms->raft_index;
		out->raft_term = ms->raft_term;
		out->raft_applied_index = ms->raft_applied_index;
		out->db_size = ms->db_size;
		out->db_size_in_use = ms->db_size_in_use;
		out->learner = ms->is_learner;
		out->protocol_version = xstrdup(ms->protocol_version ?
						ms->protocol_version : "");
		out->storage_version = xstrdup(ms->storage_version ?
					       ms->storage_version : "");
		out->errors = strv_dup(ms->errors, ms->n_errors);
		out->n_errors = ms->n_errors;
	}
	machine__etcd_status_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return explain(r, "EtcdStatus", t, st, err);
}

/* ------------------------------------------------------ snapshot, recover */

/*
 * The trailer check as bytes go by: every byte but the last 32 seen goes
 * into `inner` (held back in tail until more arrive), all of them into
 * `whole` (the file's SHA-256 for the record).
 */
void
etcd_snap_check_init(struct etcd_snap_check *k)
{
	memset(k, 0, sizeof(*k));
	k->inner = EVP_MD_CTX_new();
	k->whole = EVP_MD_CTX_new();
	if (!k->inner || !k->whole ||
	    EVP_DigestInit_ex(k->inner, EVP_sha256(), NULL) != 1 ||
	    EVP_DigestInit_ex(k->whole, EVP_sha256(), NULL) != 1) {
		fputs("fatal: cannot start SHA-256 (OpenSSL)\n", stderr);
		abort();
	}
}

void
etcd_snap_check_add(struct etcd_snap_check *k, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t keep;

	EVP_DigestUpdate(k->whole, p, len);
	k->bytes += len;
	if (len >= 32) {
		EVP_DigestUpdate(k->inner, k->tail, k->tail_len);
		EVP_DigestUpdate(k->inner, p, len - 32);
		memcpy(k->tail, p + len - 32, 32);
		k->tail_len = 32;
		return;
	}
	/* fewer than 32 new bytes: what falls out of the window is hashed */
	keep = k->tail_len + len > 32 ? 32 : k->tail_len + len;
	if (k->tail_len + len > keep) {
		size_t out = k->tail_len + len - keep;

		EVP_DigestUpdate(k->inner, k->tail, out);
		memmove(k->tail, k->tail + out, k->tail_len - out);
		k->tail_len -= out;
	}
	memcpy(k->tail + k->tail_len, p, len);
	k->tail_len += len;
}

int
etcd_snap_check_final(struct etcd_snap_check *k, char sha256_hex[65],
		      struct err *err)
{
	unsigned char md[32], whole[32];
	unsigned int n = 0, m = 0;
	int i, r = 0;

	if (EVP_DigestFinal_ex(k->inner, md, &n) != 1 ||
	    EVP_DigestFinal_ex(k->whole, whole, &m) != 1 || n != 32 || m != 32)
		r = err_set(err, ERR_FAIL, "cannot compute SHA-256 (OpenSSL)");
	else if (k->bytes < 32 || k->bytes % 512 != 32)
		r = err_set(err, ERR_FAIL, "not an etcd snapshot: sha256 "
			    "checksum not found (%" PRIu64 " bytes; a snapshot "
			    "is whole 512-byte pages plus a 32-byte SHA-256)",
			    k->bytes);
	else if (memcmp(md, k->tail, 32))
		r = err_set(err, ERR_FAIL, "the etcd snapshot is damaged: its "
			    "SHA-256 trailer does not match its contents (take "
			    "a new snapshot)");
	if (r == 0 && sha256_hex)
		for (i = 0; i < 32; i++)
			snprintf(sha256_hex + 2 * i, 3, "%02x", whole[i]);
	etcd_snap_check_release(k);
	return r;
}

void
etcd_snap_check_release(struct etcd_snap_check *k)
{
	EVP_MD_CTX_free(k->inner);
	EVP_MD_CTX_free(k->whole);
	k->inner = k->whole = NULL;
}

int
etcd_snapshot_check(const void *data, size_t len, struct err *err)
{
	struct etcd_snap_check k;

	etcd_snap_check_init(&k);
	etcd_snap_check_add(&k, data, len);
	return etcd_snap_check_final(&k, NULL, err);
}

int
etcd_snapshot_check_file(const char *path, uint64_t *bytes,
			 char sha256_hex[65], struct err *err)
{
	struct etcd_snap_check k;
	unsigned char *chunk;
	int fd, r = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(err, errno, "cannot open '%s'", path);
	chunk = xmalloc(RECOVER_CHUNK);
	etcd_snap_check_init(&k);
	for (;;) {
		ssize_t n = read(fd, chunk, RECOVER_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = err_sys(err, errno, "cannot read '%s'", path);
			break;
		}
		if (n == 0)
			break;
		etcd_snap_check_add(&k, chunk, (size_t)n);
	}
	*bytes = k.bytes;
	if (r == 0)
		r = etcd_snap_check_final(&k, sha256_hex, err);
	else
		etcd_snap_check_release(&k);
	secret_free(chunk, RECOVER_CHUNK);
	close(fd);
	return r;
}

/* The snapshot stream's sink: each common.Data's bytes to the file. */
struct snap_sink {
	const struct talos_target *t;
	struct talos_status *st;
	struct fs_atomic *w;
	struct etcd_snap_check *k;
};

static int
snap_on_msg(void *ctx, const void *msg, size_t len, struct err *err)
{
	struct snap_sink *s = ctx;
	Common__Data *d = common__data__unpack(NULL, len, msg);
	int r;

	if (!d)
		return talos_bad_reply("EtcdSnapshot", s->t, err);
	r = talos_check_meta(d->metadata, "EtcdSnapshot", s->t, s->st, err);
	if (r == 0 && s->k->bytes + d->bytes.len > SNAP_MAX)
		r = err_set(err, ERR_FAIL, "the snapshot grew past %zu bytes; "
			    "stopped", SNAP_MAX);
	if (r == 0 && (r = fs_atomic_write(s->w, d->bytes.data, d->bytes.len,
					   err)) == 0)
		etcd_snap_check_add(s->k, d->bytes.data, d->bytes.len);
	if (d->bytes.len)
		OPENSSL_cleanse(d->bytes.data, d->bytes.len);
	common__data__free_unpacked(d, NULL);
	return r;
}

int
talos_etcd_snapshot_file(const struct talos_target *t, const char *path,
			 uint64_t *bytes, char sha256_hex[65],
			 struct talos_status *st, struct err *err)
{
	Machine__EtcdSnapshotRequest req = MACHINE__ETCD_SNAPSHOT_REQUEST__INIT;
	struct talos_target tt = *t;
	struct talos_status local;
	struct grpc_result res;
	struct fs_atomic w;
	struct etcd_snap_check k;
	struct snap_sink sink;
	unsigned char wire[8];
	size_t n;
	int r;

	*bytes = 0;
	if (!st)
		st = &local;
	/* the snapshot holds every Secret of the cluster: 0600 */
	if ((r = fs_atomic_open(&w, path, FS_MODE_SECRET, false, err)) < 0)
		return r;
	if (!tt.max_reply)
		tt.max_reply = MSG_MAX;
	if (!tt.timeout_ms)
		tt.timeout_ms = 300000;
	etcd_snap_check_init(&k);
	sink.t = t;
	sink.st = st;
	sink.w = &w;
	sink.k = &k;
	n = machine__etcd_snapshot_request__pack(&req, wire);
	r = talos_call_each(&tt, "EtcdSnapshot", wire, n, snap_on_msg, &sink,
			    &res, st, err);
	grpc_result_release(&res);
	if (r < 0) {
		etcd_snap_check_release(&k);
		fs_atomic_abort(&w);
		return explain(r, "EtcdSnapshot", t, st, err);
	}
	*bytes = k.bytes;
	if ((r = etcd_snap_check_final(&k, sha256_hex, err)) < 0) {
		fs_atomic_abort(&w);
		return err_wrap(err, "EtcdSnapshot on %s", t->addr);
	}
	return fs_atomic_commit(&w, err);
}

/* The recover upload's source: the file in RECOVER_CHUNK pieces. */
struct recover_src {
	int fd;
	const char *path;
	unsigned char *chunk;
	uint64_t left;
};

static int
recover_next(void *ctx, struct buf *msg, struct err *err)
{
	struct recover_src *s = ctx;
	Common__Data d = COMMON__DATA__INIT;
	size_t want, got = 0, sz;

	if (!s->left)
		return 1;
	want = s->left < RECOVER_CHUNK ? (size_t)s->left : RECOVER_CHUNK;
	while (got < want) {
		ssize_t n = read(s->fd, s->chunk + got, want - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return err_sys(err, errno, "cannot read '%s'", s->path);
		if (n == 0)
			return err_set(err, ERR_FAIL, "'%s' got shorter while it "
				       "was sent", s->path);
		got += (size_t)n;
	}
	s->left -= want;
	d.bytes.data = s->chunk;
	d.bytes.len = want;
	sz = common__data__get_packed_size(&d);
	buf_grow(msg, sz);
	common__data__pack(&d, (uint8_t *)msg->ptr + msg->len);
	msg->len += sz;
	return 0;
}

/* The framed length of a file sent in RECOVER_CHUNK messages. */
static size_t
recover_total(uint64_t len)
{
	Common__Data d = COMMON__DATA__INIT;
	uint64_t full = len / RECOVER_CHUNK, rest = len % RECOVER_CHUNK;
	size_t total = 0;

	d.bytes.len = RECOVER_CHUNK;
	if (full)
		total += (size_t)full * (5 + common__data__get_packed_size(&d));
	d.bytes.len = (size_t)rest;
	if (rest)
		total += 5 + common__data__get_packed_size(&d);
	return total;
}

int
talos_etcd_recover_file(const struct talos_target *t, const char *path,
			struct talos_status *st, struct err *err)
{
	struct talos_target tt = *t;
	struct talos_status local;
	struct grpc_result res;
	struct recover_src rs;
	struct grpc_source src;
	Machine__EtcdRecoverResponse *resp;
	struct stat sb;
	size_t i;
	int r;

	if (!st)
		st = &local;
	grpc_result_init(&res);
	if ((rs.fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return err_sys(err, errno, "cannot open '%s'", path);
	if (fstat(rs.fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
		close(rs.fd);
		return err_set(err, ERR_USAGE, "'%s' is not a file", path);
	}
	if (!sb.st_size) {
		close(rs.fd);
		return err_set(err, ERR_USAGE, "EtcdRecover: the snapshot is empty");
	}
	if (!tt.timeout_ms)
		tt.timeout_ms = 300000;
	rs.path = path;
	rs.left = (uint64_t)sb.st_size;
	rs.chunk = xmalloc(RECOVER_CHUNK);
	src.next = recover_next;
	src.ctx = &rs;
	src.total = recover_total((uint64_t)sb.st_size);
	r = talos_call_source(&tt, "EtcdRecover", &src, &res, st, err);
	secret_free(rs.chunk, RECOVER_CHUNK);
	close(rs.fd);
	if (r < 0)
		goto out;
	if ((r = talos_one_msg(&res, "EtcdRecover", t, err)) < 0)
		goto out;
	resp = machine__etcd_recover_response__unpack(
		NULL, res.msgs[0].len, (const uint8_t *)res.msgs[0].ptr);
	if (!resp) {
		r = talos_bad_reply("EtcdRecover", t, err);
		goto out;
	}
	for (i = 0; i < resp->n_messages && r == 0; i++)
		r = talos_check_meta(resp->messages[i]->metadata, "EtcdRecover", t,
				     st, err);
	machine__etcd_recover_response__free_unpacked(resp, NULL);
out:
	grpc_result_release(&res);
	return explain(r, "EtcdRecover", t, st, err);
}

int
talos_bootstrap_recover(const struct talos_target *t, bool skip_hash_check,
			struct talos_status *st, struct err *err)
{
	Machine__BootstrapRequest req = MACHINE__BOOTSTRAP_REQUEST__INIT;
	struct talos_status local;
	struct grpc_result res;
	unsigned char wire[16];
	size_t n;
	int r;

	if (!st)
		st = &local;
	req.recover_etcd = true;
	req.recover_skip_hash_check = skip_hash_check;
	n = machine__bootstrap_request__pack(&req, wire);
	if ((r = talos_call(t, "Bootstrap", wire, n, &res, st, err)) == 0)
		r = empty_reply(&res, "Bootstrap", t, st, err);
	grpc_result_release(&res);
	if (r < 0 && st->code == GRPC_ALREADY_EXISTS)
		return err_wrap(err, "Bootstrap (recover etcd) on %s: its etcd "
				"still holds data; reset the control planes' "
				"EPHEMERAL first (strata restore does this on "
				"fresh VMs)", t->addr);
	return r;
}
