#include "provider/vps/ssh.h"

#include <libssh/libssh.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_CAP (1u << 20)

/*
 * AES-GCM first: the image is most of what crosses the session, and with
 * AES-NI (every x86-64 server of the last decade) AES-GCM costs both ends
 * about half the CPU of chacha20-poly1305 (libssh's default first choice;
 * OpenSSH computes its Poly1305 in portable C): OpenSSH's client sending
 * 256 MiB spent 0.12-0.15 s of user CPU with aes128-gcm, 0.22-0.26 s with
 * chacha20-poly1305 (the receiving sshd decrypts what it sent). chacha20 stays
 * for a server without AES-GCM. The same set as libssh's default (no
 * CBC), in another order.
 */
#define CIPHERS "aes128-gcm@openssh.com,aes256-gcm@openssh.com," \
	"chacha20-poly1305@openssh.com,aes256-ctr,aes192-ctr,aes128-ctr"

struct vps_ssh {
	ssh_session sess;
	char *host;
	int port;
	char fingerprint[128];
};

struct vps_ssh_stream {
	struct vps_ssh *s;
	ssh_channel ch;
	struct buf out, errout;    /* drained while writing */
};

void
vps_sh_quote(struct buf *b, const char *s)
{
	buf_addch(b, '\'');
	for (; *s; s++) {
		if (*s == '\'')
			buf_adds(b, "'\\''");
		else
			buf_addch(b, *s);
	}
	buf_addch(b, '\'');
}

/* "SHA256:abc=" and "SHA256:abc" are the same fingerprint. */
static bool
fingerprint_equal(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la && a[la - 1] == '=')
		la--;
	while (lb && b[lb - 1] == '=')
		lb--;
	return la == lb && !memcmp(a, b, la);
}

static int
server_fingerprint(struct vps_ssh *s, struct err *err)
{
	ssh_key key = NULL;
	unsigned char *hash = NULL;
	size_t hlen = 0;
	char *fp;

	if (ssh_get_server_publickey(s->sess, &key) != SSH_OK)
		return err_set(err, ERR_FAIL, "no host key from the server: %s",
			       ssh_get_error(s->sess));
	if (ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash,
				   &hlen) != 0) {
		ssh_key_free(key);
		return err_set(err, ERR_FAIL, "cannot hash the host key");
	}
	fp = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, hlen);
	ssh_clean_pubkey_hash(&hash);
	ssh_key_free(key);
	if (!fp)
		return err_set(err, ERR_FAIL, "cannot format the host key fingerprint");
	snprintf(s->fingerprint, sizeof(s->fingerprint), "%s", fp);
	ssh_string_free_char(fp);
	return 0;
}

/* Decide whether this server is the host the config names. */
static int
check_host_key(struct vps_ssh *s, const struct vps_ssh_opts *o,
	       struct err *err)
{
	int r;

	if ((r = server_fingerprint(s, err)) < 0)
		return r;
	if (o->host_fingerprint) {
		if (fingerprint_equal(s->fingerprint, o->host_fingerprint))
			return 0;
		return err_set(err, ERR_FAIL,
			       "host key mismatch: the server presented %s, the "
			       "config pins %s; refusing to log in (if the rescue "
			       "system was reinstalled, read its key with "
			       "'ssh-keyscan -p %d %s | ssh-keygen -lf -' from a "
			       "trusted network and update vps.ssh.host_fingerprint)",
			       s->fingerprint, o->host_fingerprint, s->port, s->host);
	}
	if (!o->known_hosts)
		return err_set(err, ERR_USAGE,
			       "no way to verify the host key (%s): set "
			       "vps.ssh.host_fingerprint", s->fingerprint);
	switch (ssh_session_is_known_server(s->sess)) {
	case SSH_KNOWN_HOSTS_OK:
		return 0;
	case SSH_KNOWN_HOSTS_CHANGED:
	case SSH_KNOWN_HOSTS_OTHER:
		return err_set(err, ERR_FAIL,
			       "host key for %s:%d changed (now %s) since it was "
			       "recorded in %s; refusing to log in", s->host,
			       s->port, s->fingerprint, o->known_hosts);
	case SSH_KNOWN_HOSTS_NOT_FOUND:
	case SSH_KNOWN_HOSTS_UNKNOWN:
		if (!o->accept_new)
			return err_set(err, ERR_FAIL,
				       "host %s:%d (key %s) is not in %s; pin it "
				       "with vps.ssh.host_fingerprint", s->host,
				       s->port, s->fingerprint, o->known_hosts);
		if (ssh_session_update_known_hosts(s->sess) != SSH_OK)
			return err_set(err, ERR_FAIL, "cannot record the host key "
				       "in %s: %s", o->known_hosts,
				       ssh_get_error(s->sess));
		return 0;
	default:
		return err_set(err, ERR_FAIL, "cannot read %s: %s",
			       o->known_hosts, ssh_get_error(s->sess));
	}
}

static int
authenticate(struct vps_ssh *s, const struct vps_ssh_opts *o,
	     struct err *err)
{
	ssh_key key = NULL;
	int rc;

	if (!o->key_file) {
		rc = ssh_userauth_agent(s->sess, NULL);
		if (rc == SSH_AUTH_SUCCESS)
			return 0;
		return err_set(err, ERR_FAIL, "no key in ssh-agent was accepted "
			       "for user '%s'; set vps.ssh.key_file or add the "
			       "key to the agent", o->user ? o->user : "root");
	}
	if (ssh_pki_import_privkey_file(o->key_file, NULL, NULL, NULL,
					&key) != SSH_OK)
		return err_set(err, ERR_USAGE, "cannot read private key '%s' (a "
			       "key with a passphrase must be loaded into "
			       "ssh-agent instead)", o->key_file);
	rc = ssh_userauth_publickey(s->sess, NULL, key);
	ssh_key_free(key);
	if (rc == SSH_AUTH_SUCCESS)
		return 0;
	return err_set(err, ERR_FAIL, "key '%s' was not accepted for user '%s' "
		       "(is its public key in the rescue system's "
		       "authorized_keys?)", o->key_file, o->user ? o->user : "root");
}

int
vps_ssh_connect(struct vps_ssh **out, const struct vps_ssh_opts *o,
		struct err *err)
{
	struct vps_ssh *s = xcalloc(1, sizeof(*s));
	long timeout = o->timeout_s > 0 ? o->timeout_s : 15;
	int no = 0, r;

	*out = NULL;
	s->host = xstrdup(o->host);
	s->port = o->port > 0 ? o->port : 22;
	if (!(s->sess = ssh_new())) {
		free(s->host);
		free(s);
		return err_set(err, ERR_FAIL, "cannot create an SSH session");
	}
	/* Only what the config says: no ~/.ssh/config, no system
	 * known_hosts. */
	ssh_options_set(s->sess, SSH_OPTIONS_PROCESS_CONFIG, &no);
	if (ssh_options_set(s->sess, SSH_OPTIONS_HOST, s->host) < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_PORT, &s->port) < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_USER,
			    o->user ? o->user : "root") < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_TIMEOUT, &timeout) < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_GLOBAL_KNOWNHOSTS,
			    "/dev/null") < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_KNOWNHOSTS,
			    o->known_hosts ? o->known_hosts : "/dev/null") < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_CIPHERS_C_S, CIPHERS) < 0 ||
	    ssh_options_set(s->sess, SSH_OPTIONS_CIPHERS_S_C, CIPHERS) < 0) {
		r = err_set(err, ERR_FAIL, "ssh options: %s",
			    ssh_get_error(s->sess));
		goto fail;
	}
	if (ssh_connect(s->sess) != SSH_OK) {
		r = err_set(err, ERR_FAIL, "cannot connect to %s:%d: %s (is the "
			    "rescue system booted and reachable?)", s->host,
			    s->port, ssh_get_error(s->sess));
		goto fail;
	}
	if ((r = check_host_key(s, o, err)) < 0 ||
	    (r = authenticate(s, o, err)) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	vps_ssh_close(s);
	return r;
}

void
vps_ssh_close(struct vps_ssh *s)
{
	if (!s)
		return;
	if (s->sess) {
		ssh_disconnect(s->sess);
		ssh_free(s->sess);
	}
	free(s->host);
	free(s);
}

const char *
vps_ssh_fingerprint(const struct vps_ssh *s)
{
	return s->fingerprint;
}

const char *
vps_ssh_cipher(const struct vps_ssh *s)
{
	const char *c = ssh_get_cipher_out(s->sess);

	return c ? c : "?";
}

static void
add_capped(struct buf *b, const char *p, int n)
{
	if (b && n > 0 && b->len < OUT_CAP)
		buf_add(b, p, (size_t)n);
}

static int
open_exec(ssh_channel *out, struct vps_ssh *s, const char *cmd,
	  struct err *err)
{
	ssh_channel ch = ssh_channel_new(s->sess);

	*out = NULL;
	if (!ch)
		return err_set(err, ERR_FAIL, "ssh channel: %s",
			       ssh_get_error(s->sess));
	if (ssh_channel_open_session(ch) != SSH_OK ||
	    ssh_channel_request_exec(ch, cmd) != SSH_OK) {
		err_set(err, ERR_FAIL, "ssh exec: %s", ssh_get_error(s->sess));
		ssh_channel_free(ch);
		return -1;
	}
	*out = ch;
	return 0;
}

/* Read both streams until the channel ends, then its exit status. */
static int
drain(struct vps_ssh *s, ssh_channel ch, struct buf *out, struct buf *errout,
      int *status, struct err *err)
{
	char tmp[16384];

	for (;;) {
		int n = ssh_channel_read_timeout(ch, tmp, sizeof(tmp), 0, 100);
		int m;

		if (n == SSH_ERROR)
			return err_set(err, ERR_FAIL, "ssh read: %s",
				       ssh_get_error(s->sess));
		add_capped(out, tmp, n);
		while ((m = ssh_channel_read_nonblocking(ch, tmp, sizeof(tmp),
							 1)) > 0)
			add_capped(errout, tmp, m);
		if (m == SSH_ERROR)
			return err_set(err, ERR_FAIL, "ssh read: %s",
				       ssh_get_error(s->sess));
		if (n <= 0 && (ssh_channel_is_eof(ch) || !ssh_channel_is_open(ch)))
			break;
	}
	*status = ssh_channel_get_exit_status(ch);
	return 0;
}

int
vps_ssh_run(struct vps_ssh *s, const char *cmd, struct buf *out,
	    struct buf *errout, int *status, struct err *err)
{
	ssh_channel ch;
	int r;

	*status = -1;
	if ((r = open_exec(&ch, s, cmd, err)) < 0)
		return r;
	r = drain(s, ch, out, errout, status, err);
	ssh_channel_close(ch);
	ssh_channel_free(ch);
	return r;
}

int
vps_ssh_stream_open(struct vps_ssh_stream **out, struct vps_ssh *s,
		    const char *cmd, struct err *err)
{
	struct vps_ssh_stream *st;
	ssh_channel ch;
	int r;

	*out = NULL;
	if ((r = open_exec(&ch, s, cmd, err)) < 0)
		return r;
	st = xcalloc(1, sizeof(*st));
	st->s = s;
	st->ch = ch;
	buf_init(&st->out);
	buf_init(&st->errout);
	*out = st;
	return 0;
}

int
vps_ssh_stream_write(struct vps_ssh_stream *st, const void *p, size_t n,
		     struct err *err)
{
	const char *c = p;
	char tmp[4096];

	while (n) {
		/* a send queue slot (rescue.c) is one write: libssh cuts it
		 * into packets as the window allows */
		size_t chunk = n > (1u << 20) ? (1u << 20) : n;
		int w, m;

		/* Keep the remote's output moving so it never blocks on a
		 * full window while we block on ours. */
		while ((m = ssh_channel_read_nonblocking(st->ch, tmp,
							 sizeof(tmp), 1)) > 0)
			add_capped(&st->errout, tmp, m);
		while ((m = ssh_channel_read_nonblocking(st->ch, tmp,
							 sizeof(tmp), 0)) > 0)
			add_capped(&st->out, tmp, m);
		if (ssh_channel_is_eof(st->ch) || !ssh_channel_is_open(st->ch))
			return err_set(err, ERR_FAIL, "the remote command ended "
				       "while data was still being sent%s%.*s",
				       st->errout.len ? ": " : "",
				       (int)(st->errout.len > 300 ? 300
					     : st->errout.len), st->errout.ptr);
		w = ssh_channel_write(st->ch, c, (uint32_t)chunk);
		if (w == SSH_ERROR || w <= 0)
			return err_set(err, ERR_FAIL, "ssh write: %s",
				       ssh_get_error(st->s->sess));
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
stream_free(struct vps_ssh_stream *st)
{
	ssh_channel_close(st->ch);
	ssh_channel_free(st->ch);
	buf_release(&st->out);
	buf_release(&st->errout);
	free(st);
}

int
vps_ssh_stream_close(struct vps_ssh_stream *st, struct buf *out,
		     struct buf *errout, int *status, struct err *err)
{
	int r;

	*status = -1;
	if (ssh_channel_send_eof(st->ch) != SSH_OK) {
		r = err_set(err, ERR_FAIL, "ssh eof: %s",
			    ssh_get_error(st->s->sess));
		stream_free(st);
		return r;
	}
	r = drain(st->s, st->ch, &st->out, &st->errout, status, err);
	if (out)
		buf_add(out, st->out.ptr, st->out.len);
	if (errout)
		buf_add(errout, st->errout.ptr, st->errout.len);
	stream_free(st);
	return r;
}

void
vps_ssh_stream_abort(struct vps_ssh_stream *st)
{
	if (st)
		stream_free(st);
}
