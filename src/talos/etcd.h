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
 * EtcdSnapshot: the streamed snapshot appended to out, checked to carry
 * its SHA-256 trailer (size % 512 == 32 and the last 32 bytes are the
 * SHA-256 of the rest). Role os:etcd:backup is enough. The whole
 * snapshot is held in memory, at most t->max_reply bytes (0: 1 GiB here).
 */
int talos_etcd_snapshot(const struct talos_target *t, struct buf *out,
			struct talos_status *st, struct err *err);
/* Is this a snapshot with its SHA-256 trailer? -1 with err saying why not. */
int etcd_snapshot_check(const void *data, size_t len, struct err *err);

/* EtcdRecover: upload a snapshot (client stream of common.Data chunks). */
int talos_etcd_recover(const struct talos_target *t, const void *data,
		       size_t len, struct talos_status *st, struct err *err);
/* Bootstrap{recover_etcd=true}: etcd starts from the uploaded snapshot.
 * AlreadyExists here is an error: the node's etcd was not empty. */
int talos_bootstrap_recover(const struct talos_target *t, bool skip_hash_check,
			    struct talos_status *st, struct err *err);

#endif
