/*
 * api: the Talos API calls a bootstrapper needs, on util/grpc with
 * protobuf-c messages from proto/machine.proto.
 *
 * A target is one node address. Without credentials the call is made the
 * way maintenance mode wants it (server-only TLS, nothing to verify the
 * node's random cert against); with credentials from the talosconfig it
 * is mutual TLS: the node must present a cert from this cluster's OS CA
 * naming the address, and we present the admin cert.
 *
 * Every call returns 0, or -1 with err filled ("<method> on <addr>: ...")
 * and st (when given) saying what kind of failure it was, so callers can
 * tell "not up yet, retry" from "wrong cluster, stop".
 */
#ifndef STRATA_TALOS_API_H
#define STRATA_TALOS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

#define TALOS_API_PORT 50000

/* Admin access from a talosconfig: PEM texts (the key is wiped on release). */
struct talos_creds {
	char *context;
	char *ca_pem;              /* the OS CA */
	char *crt_pem;             /* admin client cert */
	char *key_pem;
};

int talos_creds_parse(struct talos_creds *c, const char *text, size_t len,
		      struct err *err);
int talos_creds_load(struct talos_creds *c, const char *path, struct err *err);
void talos_creds_release(struct talos_creds *c);

struct talos_target {
	const char *addr;          /* IPv4 address */
	int port;                  /* 0: 50000 */
	const struct talos_creds *creds;  /* NULL: maintenance mode */
	long timeout_ms;           /* 0: 10 s */
	long connect_timeout_ms;   /* 0: 3 s */
	/* Without creds: the certificate (hex SHA-256) the node must still
	 * present, the one talos_probe saw (talos_status.cert_sha256). A
	 * maintenance-mode ApplyConfiguration requires it, so the config
	 * goes only to the machine that was probed, over a handshake that
	 * shows that same certificate. */
	const char *pin_sha256;
	size_t max_reply;          /* reply bytes kept at most; 0: 64 MiB */
};

/* What went wrong, for the caller's retry decision. */
struct talos_status {
	int code;                  /* enum grpc_code; GRPC_TRANSPORT: no answer */
	int tls;                   /* enum grpc_tls */
	bool cert_requested;       /* the server asked for a client cert */
	bool hung_up;              /* tls CLIENT_REJECTED by a hang-up, no
	                            * alert (grpc.h) */
	/* Looks like maintenance mode, by facts only (never message text):
	 * a call without credentials, the server asked for no client
	 * certificate (apid always does), and the status is Unimplemented
	 * (what maintenance mode answers to admin calls such as Version). */
	bool maintenance;
	char cert_sha256[65];      /* the node's leaf certificate, or "" */
};

/* What a node at an address is, as far as one look tells. */
enum talos_probe {
	TALOS_UP,            /* Version answered over mTLS: one of ours */
	TALOS_MAINTENANCE,   /* unverifiable cert, no client-cert request,
	                      * Version Unimplemented: a fresh node (or one
	                      * posing as it: see trust/trust.h) */
	TALOS_FOREIGN,       /* another CA's cert, or our client cert refused */
	TALOS_DOWN,          /* no answer, or another failure (st says which) */
};

/*
 * Version with t's credentials. An untrusted cert is looked at once more
 * without verification (an empty Version request: nothing secret),
 * which tells maintenance mode from another cluster. *tag is set when
 * TALOS_UP; err and st describe the mTLS try. Without credentials in t,
 * only that second look is made: TALOS_MAINTENANCE, TALOS_FOREIGN (it
 * answered, but not as maintenance mode) or TALOS_DOWN. For
 * TALOS_MAINTENANCE, st->cert_sha256 is the certificate of that look: pin
 * the send to it (talos_target.pin_sha256).
 */
int talos_probe(const struct talos_target *t, char **tag,
		struct talos_status *st, struct err *err);

/* True when the failure means "the node is not (yet) answering": connection
 * refused or reset, Unavailable, a deadline. */
bool talos_status_transient(const struct talos_status *st);

/*
 * ApplyConfiguration with mode AUTO (Talos reboots only when the change
 * needs it; in maintenance mode it installs). *details gets the server's
 * mode_details (may be NULL); warnings are printed as notes.
 */
int talos_apply_configuration(const struct talos_target *t, const void *cfg,
			      size_t len, char **details,
			      struct talos_status *st, struct err *err);
enum talos_apply_mode {
	TALOS_APPLY_AUTO,
	TALOS_APPLY_NO_REBOOT,     /* refused if the change needs a reboot */
	TALOS_APPLY_STAGED,        /* takes effect at the next reboot */
};
int talos_apply_configuration_mode(const struct talos_target *t,
				   const void *cfg, size_t len,
				   enum talos_apply_mode mode, char **details,
				   struct talos_status *st, struct err *err);
/*
 * Mode AUTO on an installed node, telling whether Talos reboots for it:
 * *reboots is true when the reply's mode (the mode Talos used, FACTS.md
 * ApplyConfiguration field 3) is REBOOT; else it applied the change live.
 */
int talos_apply_configuration_reboots(const struct talos_target *t,
				      const void *cfg, size_t len, bool *reboots,
				      struct talos_status *st, struct err *err);
/*
 * Upgrade{image} (MachineService, v1.12): the node pulls and checks the
 * installer image (and etcd health on a control plane) before it answers;
 * *actor gets the actor id. The upgrade and the reboot then run on their
 * own: wait for a new boot id (talos_boot_id) and the new version.
 */
/* MachineService/ImagePull (FACTS-day2 4b step 2): pull ref into
 * containerd namespace ns (TALOS_NS_SYSTEM, TALOS_NS_CRI) before it is
 * needed. st->code GRPC_UNIMPLEMENTED: the node has no such method. */
#define TALOS_NS_SYSTEM 1
#define TALOS_NS_CRI 2
int talos_image_pull(const struct talos_target *t, int ns, const char *ref,
		     struct talos_status *st, struct err *err);
int talos_upgrade(const struct talos_target *t, const char *image,
		  char **actor, struct talos_status *st, struct err *err);
/* Read /proc/sys/kernel/random/boot_id into out (36 characters). */
int talos_boot_id(const struct talos_target *t, char *out, size_t len,
		  struct talos_status *st, struct err *err);
/*
 * The same in mode TRY: applied without a reboot and reverted by Talos
 * after try_s seconds (try_mode_timeout) unless the same config is then
 * applied in another mode (FACTS-metal.md §4: firewall changes).
 */
int talos_apply_configuration_try(const struct talos_target *t, const void *cfg,
				  size_t len, long try_s, char **details,
				  struct talos_status *st, struct err *err);
int talos_version(const struct talos_target *t, char **tag,
		  struct talos_status *st, struct err *err);
/* *already is set when etcd was already bootstrapped (AlreadyExists). */
int talos_bootstrap(const struct talos_target *t, bool *already,
		    struct talos_status *st, struct err *err);
/* The Kubeconfig stream's bytes (a .tar.gz holding `kubeconfig`). */
int talos_kubeconfig(const struct talos_target *t, struct buf *targz,
		     struct talos_status *st, struct err *err);
/* One service's state ("Running", ...) and health from ServiceList;
 * *state is NULL when the node does not run that service. */
int talos_service(const struct talos_target *t, const char *id, char **state,
		  bool *healthy, struct talos_status *st, struct err *err);

/*
 * COSI resources (/cosi.resource.State/List, reader and up): every
 * resource of type in namespace ns on the node, as talosctl get lists
 * them: its id, version and spec as YAML (the spec may hold secrets: the
 * bootstrap token of Manifests; talos_resources_free wipes it).
 */
struct talos_resource {
	char *id;
	char *version;
	char *yaml;
};
int talos_resource_list(const struct talos_target *t, const char *ns,
			const char *type, struct talos_resource **out,
			size_t *n, struct talos_status *st, struct err *err);
void talos_resources_free(struct talos_resource *v, size_t n);

/*
 * For the other Talos modules (talos/etcd.c): one call of
 * /machine.MachineService/<method> with an encoded request (res holds the
 * reply messages; release it even on failure), a client stream of n
 * requests, and the check of a reply's common.Metadata (a
 * Common__Metadata *, may be NULL) for a backend's error.
 */
struct grpc_result;
int talos_call(const struct talos_target *t, const char *method,
	       const void *req, size_t len, struct grpc_result *res,
	       struct talos_status *st, struct err *err);
int talos_call_stream(const struct talos_target *t, const char *method,
		      const struct buf *reqs, size_t n, struct grpc_result *res,
		      struct talos_status *st, struct err *err);
/* A server stream whose messages go to on_msg as they arrive (none kept
 * in res), and a client stream pulled from src while it is sent. */
int talos_call_each(const struct talos_target *t, const char *method,
		    const void *req, size_t len,
		    int (*on_msg)(void *ctx, const void *msg, size_t len,
				  struct err *err),
		    void *ctx, struct grpc_result *res, struct talos_status *st,
		    struct err *err);
struct grpc_source;
int talos_call_source(const struct talos_target *t, const char *method,
		      const struct grpc_source *src, struct grpc_result *res,
		      struct talos_status *st, struct err *err);
int talos_check_meta(const void *meta, const char *method,
		     const struct talos_target *t, struct talos_status *st,
		     struct err *err);
/* A unary reply must be one message; a reply that does not decode. */
int talos_one_msg(const struct grpc_result *res, const char *method,
		  const struct talos_target *t, struct err *err);
int talos_bad_reply(const char *method, const struct talos_target *t,
		    struct err *err);

#endif
