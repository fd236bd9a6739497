/*
 * vps/ssh: one SSH session to a rescue system (libssh), with the host key
 * checked before anything is sent, key-based authentication, and remote
 * commands run with their output, exit status or a stdin stream.
 *
 * Host key trust, in this order:
 *   - host_fingerprint "SHA256:<base64>" (as ssh-keygen -lf prints it):
 *     the server's key must hash to exactly that;
 *   - known_hosts FILE: the key must be recorded there for host:port;
 *     with accept_new, a host that is not in the file yet is recorded
 *     (first use) and pinned from then on; a changed key is always refused.
 * With neither, connecting is refused: there is no "accept anything".
 *
 *	struct vps_ssh *s;
 *	if (vps_ssh_connect(&s, &opts, err) < 0)
 *		return err_wrap(err, "rescue system %s", host);
 *	r = vps_ssh_run(s, "uname -a", &out, &errout, &status, err);
 *	vps_ssh_close(s);
 */
#ifndef STRATA_PROVIDER_VPS_SSH_H
#define STRATA_PROVIDER_VPS_SSH_H

#include <stdbool.h>
#include <stddef.h>

#include "util/buf.h"
#include "util/err.h"

struct vps_ssh_opts {
	const char *host;              /* IPv4 address or name */
	int port;                      /* default 22 */
	const char *user;              /* default root */
	const char *key_file;          /* private key; NULL: ssh-agent */
	const char *host_fingerprint;  /* "SHA256:..." or NULL */
	const char *known_hosts;       /* file, or NULL */
	bool accept_new;               /* first use: record an unknown host */
	long timeout_s;                /* connect timeout, default 15 */
};

struct vps_ssh;

int vps_ssh_connect(struct vps_ssh **out, const struct vps_ssh_opts *o,
		    struct err *err);
void vps_ssh_close(struct vps_ssh *s);   /* NULL-safe */

/* The server key's fingerprint as "SHA256:<base64>" (after connect). */
const char *vps_ssh_fingerprint(const struct vps_ssh *s);
/* The cipher negotiated for what strata sends (after connect). */
const char *vps_ssh_cipher(const struct vps_ssh *s);

/*
 * Run cmd through the remote shell. stdout goes to out and stderr to
 * errout (either may be NULL; each capped at 1 MiB), the exit status to
 * *status (-1 when the server sent none). Returns 0 when the command ran,
 * whatever its status; -1 on a transport failure.
 */
int vps_ssh_run(struct vps_ssh *s, const char *cmd, struct buf *out,
		struct buf *errout, int *status, struct err *err);

/* A remote command fed on its stdin: open, write, ..., close. */
struct vps_ssh_stream;
int vps_ssh_stream_open(struct vps_ssh_stream **out, struct vps_ssh *s,
			const char *cmd, struct err *err);
int vps_ssh_stream_write(struct vps_ssh_stream *st, const void *p, size_t n,
			 struct err *err);
/* Send EOF, collect stdout/stderr and the exit status; frees st. */
int vps_ssh_stream_close(struct vps_ssh_stream *st, struct buf *out,
			 struct buf *errout, int *status, struct err *err);
/* Abandon a stream (transfer failed): closes the channel, frees st. */
void vps_ssh_stream_abort(struct vps_ssh_stream *st);

/* Append s to b quoted for a POSIX shell ('...' with ' escaped). */
void vps_sh_quote(struct buf *b, const char *s);

#endif
