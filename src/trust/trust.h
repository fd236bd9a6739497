/*
 * trust: the one answer to "may this secret go to this peer?".
 *
 * A node's machine config holds the cluster's keys (every CA key, the
 * join tokens). It leaves strata two ways:
 *
 *   over mTLS   to a peer whose certificate verified against this
 *               cluster's OS CA for the address, and which accepted our
 *               admin client certificate: always allowed;
 *   in maintenance mode
 *               over TLS that verifies nothing (the node's certificate is
 *               random). Allowed only to a node the journal has never
 *               seen installed, at an address that came from the config
 *               or from the Proxmox guest agent over the authenticated
 *               API (matched by the VM's own MAC), and only to a peer
 *               that looks like maintenance mode by TLS facts and status
 *               codes (no client-certificate request, Version
 *               Unimplemented), never by message text. A node the journal
 *               records as installed that answers as maintenance is
 *               treated as a foreign machine holding its address, unless
 *               the user says `--reinstall NODE`.
 *
 * HTTP secrets (the Proxmox API token, the Kubernetes client key) go
 * only where trust_http_send says: util/http asks it for every client it
 * makes, before any connection. Allowed: a pinned leaf certificate, or a
 * CA that replaces the system store (name checked), or the config's
 * explicit insecure; and only with libcurl on OpenSSL, whose callbacks
 * do those checks inside the handshake, before any byte of a request
 * (with the token) is written.
 */
#ifndef STRATA_TRUST_TRUST_H
#define STRATA_TRUST_TRUST_H

#include <stdbool.h>

#include "state/state.h"
#include "util/err.h"

/* Where the address a secret would go to came from. */
enum trust_addr {
	TRUST_ADDR_UNKNOWN = 0,  /* anything else: never for maintenance */
	TRUST_ADDR_CONFIG,       /* the node's address in config.yml */
	TRUST_ADDR_AGENT,        /* the guest agent via the Proxmox API,
	                          * the interface with the VM's MAC */
};

/* What the peer proved about itself. */
enum trust_peer {
	TRUST_PEER_UNKNOWN = 0,
	TRUST_PEER_CLUSTER,      /* mTLS against the cluster's OS CA */
	TRUST_PEER_MAINTENANCE,  /* looks like a fresh node (see above) */
};

struct trust_node {
	const char *name;
	const char *env_dir;     /* for the command in a refusal */
	bool installed;          /* the journal saw it up over mTLS */
	bool reinstall;          /* the user passed --reinstall NAME */
};

/*
 * May node n's machine config be sent to the peer at addr:port? 0, or
 * -1 with err (ERRK_REFUSED) saying why and what the user can do.
 */
int trust_config_send(const struct trust_node *n, const char *addr, int port,
		      enum trust_addr src, enum trust_peer peer,
		      struct err *err);

/*
 * The journal's word: has the node been confirmed up over mTLS since its
 * VM was created? (An environment journaled before this key existed
 * counts a node booting from its disk as installed.)
 */
bool trust_journal_installed(struct state *st, const char *node);
int trust_journal_mark_installed(struct state *st, const char *node,
				 struct err *err);

const char *trust_addr_name(enum trust_addr a);

/* How an HTTPS client would prove the server before a request leaves. */
enum trust_tls {
	TRUST_TLS_NONE = 0,      /* nothing to verify with */
	TRUST_TLS_PIN,           /* SHA-256 of the leaf, checked in the handshake */
	TRUST_TLS_CA,            /* a CA that replaces the system store, and
	                          * the host name */
	TRUST_TLS_INSECURE,      /* the config says insecure, explicitly */
};

struct trust_http_peer {
	const char *host;        /* "host:port", for messages */
	const char *secret;      /* what would go ("the API token"), or NULL */
	enum trust_tls tls;
	/* The checks run inside the handshake: libcurl's TLS backend is
	 * OpenSSL (tls_global_init succeeded); else tls_error says why. */
	bool openssl;
	const char *tls_error;
};

/*
 * May a client for this peer be made, and its secret sent over it? 0, or
 * -1 with err (ERRK_REFUSED; ERR_USAGE when the config gives no way to
 * verify) saying why and what to do.
 */
int trust_http_send(const struct trust_http_peer *p, struct err *err);

#endif
