/*
 * etcd: the Talos API's etcd calls (FACTS-day2.md sections 2, 3, 4c, 4d),
 * on talos/api's gRPC layer. Every call goes to one control-plane node
 * (t->addr); on a worker the node answers Unimplemented ("... is only
 * available on control plane nodes"), which comes back as an error.
 *
 * Member IDs travel as uint64 and are shown as 16 lowercase hex digits,
 * zero padded, the way talosctl prints and parses them.
 */
#ifndef STRATA_TALOS_ETCD_H
#define STRATA_TALOS_ETCD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "talos/api.h"
#include "util/buf.h"
#include "util/err.h"

struct etcd_member {
	uint64_t id;
	char *hostname;          /* "" while the member has not started */
	char **peer_urls;
	size_t n_peer_urls;
	char **client_urls;
	size_t n_client_urls;
	bool learner;
};

struct etcd_members {
	struct etcd_member *v;
	size_t n;
};

void etcd_members_release(struct etcd_members *m);
/* The member of that etcd name (hostname), or NULL. */
const struct etcd_member *etcd_members_find(const struct etcd_members *m,
					    const char *hostname);

struct etcd_status {
	uint64_t member_id;
	uint64_t leader;         /* member id of the leader; 0: none known */
	uint64_t raft_index, raft_term, raft_applied_index;
	int64_t db_size, db_size_in_use;
	bool learner;
	char *protocol_version;  /* the etcd server version, e.g. "3.6.4" */
	char *storage_version;
	char **errors;           /* alarms such as NOSPACE */
	size_t n_errors;
};

void etcd_status_release(struct etcd_status *s);

/* "%016x" of id into out (17 bytes). */
void etcd_member_id_format(uint64_t id, char out[17]);
/* Base-16 uint64 (what talosctl accepts); -1 with err when it is not one. */
int etcd_member_id_parse(const char *s, uint64_t *id, struct err *err);

/* EtcdMemberList. query_local: ask only the node's own etcd. */
int talos_etcd_members(const struct talos_target *t, bool query_local,
		       struct etcd_members *out, struct talos_status *st,
		       struct err *err);
/* EtcdLeaveCluster: the node's own member leaves (admin). */
int talos_etcd_leave(const struct talos_target *t, struct talos_status *st,
		     struct err *err);
/* EtcdRemoveMemberByID from a surviving member (admin). *not_found (may
 * be NULL) is set when the member was already gone (NotFound), which
 * then counts as success. */
int talos_etcd_remove_member(const struct talos_target *t, uint64_t id,
			     bool *not_found, struct talos_status *st,
			     struct err *err);
/* EtcdForfeitLeadership: *new_leader gets the new leader's 16-digit id,
 * or "" when the node did not lead. Caller frees. */
int talos_etcd_forfeit_leadership(const struct talos_target *t,
				  char **new_leader, struct talos_status *st,
				  struct err *err);
/* EtcdStatus of the node's member. */
int talos_etcd_status(const struct talos_target *t, struct etcd_status *out,
		      struct talos_status *st, struct err *err);

/*
 * An etcd snapshot is a bbolt file with its SHA-256 appended: size %
 * 512 == 32 and the last 32 bytes are the SHA-256 of the rest
 * (FACTS-day2.md 3). The check runs over bytes as they go by: init, add
 * any pieces, final (which also gives the SHA-256 of all the bytes, for
 * the record; may be NULL) or release.
 */
struct evp_md_ctx_st;
struct etcd_snap_check {
	struct evp_md_ctx_st *inner, *whole;
	unsigned char tail[32];
	size_t tail_len;
	uint64_t bytes;
};
void etcd_snap_check_init(struct etcd_snap_check *k);
void etcd_snap_check_add(struct etcd_snap_check *k, const void *data,
			 size_t len);
int etcd_snap_check_final(struct etcd_snap_check *k, char sha256_hex[65],
			  struct err *err);
void etcd_snap_check_release(struct etcd_snap_check *k);
/* Is this a snapshot with its SHA-256 trailer? -1 with err saying why not. */
int etcd_snapshot_check(const void *data, size_t len, struct err *err);
/* The same for a file, read in 1 MiB pieces; *bytes its size. */
int etcd_snapshot_check_file(const char *path, uint64_t *bytes,
			     char sha256_hex[65], struct err *err);

/*
 * EtcdSnapshot into path, written as it streams in (a temporary file
 * 0600 beside it, never replacing a file: -ERR_EXISTS), checked as it
 * goes; renamed into place, fsynced, only when the stream ended well and
 * the trailer matched, else removed. *bytes and sha256_hex (of the whole
 * file) describe it. Role os:etcd:backup is enough. Memory: one message.
 */
int talos_etcd_snapshot_file(const struct talos_target *t, const char *path,
			     uint64_t *bytes, char sha256_hex[65],
			     struct talos_status *st, struct err *err);

/* EtcdRecover: upload the snapshot in path (client stream of 1 MiB
 * common.Data chunks read from the file as they are sent). */
int talos_etcd_recover_file(const struct talos_target *t, const char *path,
			    struct talos_status *st, struct err *err);
/* Bootstrap{recover_etcd=true}: etcd starts from the uploaded snapshot.
 * AlreadyExists here is an error: the node's etcd was not empty. */
int talos_bootstrap_recover(const struct talos_target *t, bool skip_hash_check,
			    struct talos_status *st, struct err *err);

#endif
