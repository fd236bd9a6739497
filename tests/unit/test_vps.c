/*
 * vps/ssh and vps/rescue against a real OpenSSH server on loopback
 * (Debian's openssh-server, a throwaway host key, a high port) playing
 * the rescue system; the "disk" is a file, the image is served by a
 * python3 http.server on loopback. Skips (with a reason) when not root or
 * when sshd is absent.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <lzma.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include <cmocka.h>

#include "provider/vps/rescue.h"
#include "provider/vps/ssh.h"
#include "util/fs.h"

static char dir[256];
static int ssh_port, http_port, bare_port, dec_port;
static pid_t sshd_pid, http_pid, bare_pid, dec_pid;
static char host_fp[128];
static unsigned char *image;
static size_t image_len = 3u << 20;
static const char *skip_reason;

#define NEED_SSHD() do { if (skip_reason) skip(); } while (0)

static void
sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (system(cmd) != 0)
		fail_msg("command failed: %s", cmd);
}

static bool
port_free(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons((unsigned short)port) };
	int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static int
pick_port(void)
{
	int i;

	for (i = 0; i < 200; i++) {
		int p = 20000 + (int)((getpid() * 7919 + i * 104729 + time(NULL)) % 30000);

		if (port_free(p))
			return p;
	}
	return 0;
}

static bool
wait_port(int port)
{
	int i;

	for (i = 0; i < 200; i++) {
		struct sockaddr_in a = { .sin_family = AF_INET,
					 .sin_port = htons((unsigned short)port) };
		int fd = socket(AF_INET, SOCK_STREAM, 0), ok;

		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return true;
		usleep(50000);
	}
	return false;
}

static pid_t
spawn(char *const argv[], const char *log)
{
	pid_t pid = fork();

	if (pid == 0) {
		FILE *f = freopen(log, "a", stderr);

		(void)f;
		if (!freopen("/dev/null", "w", stdout))
			_exit(126);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static void
stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

/* sshd with host key KEY (a file name under dir) on PORT; with a PATH, its
 * sessions see only that PATH (a rescue system without some tools). */
static pid_t
start_sshd_on(const char *key, int portnum, const char *path)
{
	char cfg[512], port[16], log[512];
	pid_t pid;
	FILE *f;

	snprintf(cfg, sizeof(cfg), "%s/sshd_config.%d", dir, portnum);
	f = fopen(cfg, "w");
	assert_non_null(f);
	fprintf(f, "ListenAddress 127.0.0.1\nHostKey %s/%s\nPidFile none\n"
		"AuthorizedKeysFile %s/authorized_keys\nStrictModes no\n"
		"UsePAM no\nPasswordAuthentication no\n"
		"KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
		"AllowTcpForwarding no\nX11Forwarding no\n", dir, key, dir);
	if (path)
		fprintf(f, "SetEnv PATH=%s\n", path);
	fclose(f);
	snprintf(port, sizeof(port), "%d", portnum);
	snprintf(log, sizeof(log), "%s/sshd.log", dir);
	{
		char *argv[] = { "/usr/sbin/sshd", "-D", "-e", "-f", cfg, "-p",
				 port, NULL };

		pid = spawn(argv, log);
	}
	assert_true(wait_port(portnum));
	return pid;
}

static void
start_sshd(const char *key)
{
	sshd_pid = start_sshd_on(key, ssh_port, NULL);
}

static int
setup(void **state)
{
	char imgdir[300], port[16], log[300];
	ZSTD_CCtx *cc;
	size_t zcap, zlen, xcap, xlen = 0, i;
	unsigned char *z, *x;
	FILE *f;

	(void)state;
	if (geteuid() != 0 || access("/usr/sbin/sshd", X_OK) != 0) {
		skip_reason = "needs root and /usr/sbin/sshd (Debian openssh-server)";
		fprintf(stderr, "skip: %s\n", skip_reason);
		return 0;
	}
	snprintf(dir, sizeof(dir), "/tmp/strata-vps.XXXXXX");
	assert_non_null(mkdtemp(dir));
	mkdir("/run/sshd", 0755);
	sh("ssh-keygen -q -t ed25519 -N '' -f %s/hostkey", dir);
	sh("ssh-keygen -q -t ed25519 -N '' -f %s/hostkey2", dir);
	sh("ssh-keygen -q -t ed25519 -N '' -f %s/client", dir);
	sh("cp %s/client.pub %s/authorized_keys", dir, dir);
	{
		char cmd[600], line[256];
		FILE *p;

		snprintf(cmd, sizeof(cmd), "ssh-keygen -lf %s/hostkey.pub", dir);
		p = popen(cmd, "r");
		assert_non_null(p);
		assert_non_null(fgets(line, sizeof(line), p));
		pclose(p);
		/* "256 SHA256:xxxx comment (ED25519)" */
		assert_int_equal(sscanf(line, "%*d %127s", host_fp), 1);
	}
	ssh_port = pick_port();
	assert_true(ssh_port > 0);
	start_sshd("hostkey");
	/* A rescue system with the basics but no curl, wget, zstd or xz. */
	sh("mkdir -p %s/bin && for t in sh cat readlink wc mktemp mkfifo tee cut "
	   "tail rm dd head sha256sum; do ln -s \"$(command -v $t)\" %s/bin/$t; "
	   "done", dir, dir);
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/bin", dir);
		do
			bare_port = pick_port();
		while (bare_port == ssh_port);
		bare_pid = start_sshd_on("hostkey", bare_port, path);
	}
	/* One without curl that decompresses itself: zstd (logged to
	 * zstd.used), and an xz that reads everything and fails. */
	sh("mkdir -p %s/decbin && cp -P %s/bin/* %s/decbin/ && z=$(command -v zstd) && "
	   "printf '#!/bin/sh\\necho \"$*\" >> %s/zstd.used\\nexec %%s \"$@\"\\n' "
	   "\"$z\" > %s/decbin/zstd && printf '#!/bin/sh\\ncat > /dev/null\\n"
	   "echo xz: broken >&2\\nexit 1\\n' > %s/decbin/xz && "
	   "chmod +x %s/decbin/zstd %s/decbin/xz", dir, dir, dir, dir, dir, dir,
	   dir, dir);
	{
		char path[300];

		snprintf(path, sizeof(path), "%s/decbin", dir);
		do
			dec_port = pick_port();
		while (dec_port == ssh_port || dec_port == bare_port);
		dec_pid = start_sshd_on("hostkey", dec_port, path);
	}

	/* The image: 3 MiB of pseudo-random bytes, raw, .zst and .xz. */
	image = malloc(image_len);
	srand(42);
	for (i = 0; i < image_len; i++)
		image[i] = (unsigned char)(rand() >> 7) & (i % 4096 < 2048 ? 0xff : 0x0f);
	snprintf(imgdir, sizeof(imgdir), "%s/www", dir);
	mkdir(imgdir, 0755);
	zcap = ZSTD_compressBound(image_len);
	z = malloc(zcap);
	cc = ZSTD_createCCtx();
	zlen = ZSTD_compressCCtx(cc, z, zcap, image, image_len, 3);
	ZSTD_freeCCtx(cc);
	assert_false(ZSTD_isError(zlen));
	xcap = lzma_stream_buffer_bound(image_len);
	x = malloc(xcap);
	assert_int_equal(lzma_easy_buffer_encode(1, LZMA_CHECK_CRC64, NULL, image,
						 image_len, x, &xlen, xcap), LZMA_OK);
	{
		char p[400];

		snprintf(p, sizeof(p), "%s/metal-amd64.raw", imgdir);
		f = fopen(p, "w"); fwrite(image, 1, image_len, f); fclose(f);
		snprintf(p, sizeof(p), "%s/metal-amd64.raw.zst", imgdir);
		f = fopen(p, "w"); fwrite(z, 1, zlen, f); fclose(f);
		snprintf(p, sizeof(p), "%s/metal-amd64.raw.xz", imgdir);
		f = fopen(p, "w"); fwrite(x, 1, xlen, f); fclose(f);
		/* Cut short: a download that ends in the middle. */
		snprintf(p, sizeof(p), "%s/truncated.raw.zst", imgdir);
		f = fopen(p, "w"); fwrite(z, 1, zlen / 2, f); fclose(f);
	}
	free(z);
	free(x);
	http_port = pick_port();
	snprintf(port, sizeof(port), "%d", http_port);
	snprintf(log, sizeof(log), "%s/http.log", dir);
	{
		char *argv[] = { "/usr/bin/python3", "-m", "http.server", "--bind",
				 "127.0.0.1", "--directory", imgdir, port, NULL };

		http_pid = spawn(argv, log);
	}
	assert_true(wait_port(http_port));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	if (skip_reason)
		return 0;
	stop(&sshd_pid);
	stop(&bare_pid);
	stop(&dec_pid);
	stop(&http_pid);
	free(image);
	if (dir[0])
		sh("rm -rf %s", dir);
	return 0;
}

static void
opts_for(struct vps_ssh_opts *o, char *key, size_t n)
{
	memset(o, 0, sizeof(*o));
	snprintf(key, n, "%s/client", dir);
	o->host = "127.0.0.1";
	o->port = ssh_port;
	o->user = "root";
	o->key_file = key;
	o->host_fingerprint = host_fp;
	o->timeout_s = 10;
}

static size_t
count_in_log(const char *what)
{
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;
	char p[300];
	size_t n = 0;
	const char *s;

	snprintf(p, sizeof(p), "%s/sshd.log", dir);
	if (fs_read_file(&b, p, 1 << 20, &err) == 0)
		for (s = b.ptr; (s = strstr(s, what)); s++)
			n++;
	buf_release(&b);
	return n;
}

static void
test_vps__run_commands_with_pinned_key(void **state)
{
	struct vps_ssh_opts o;
	struct vps_ssh *s;
	struct buf out = BUF_INIT, eout = BUF_INIT;
	struct err err = ERR_INIT;
	char key[300];
	int status;

	(void)state;
	NEED_SSHD();
	opts_for(&o, key, sizeof(key));
	assert_int_equal(vps_ssh_connect(&s, &o, &err), 0);
	assert_string_equal(vps_ssh_fingerprint(s), host_fp);
	/* AES-GCM is preferred (cheaper than chacha20-poly1305 on both ends
	 * with AES-NI; ssh.c) and OpenSSH's sshd offers it. */
	assert_string_equal(vps_ssh_cipher(s), "aes128-gcm@openssh.com");
	assert_int_equal(vps_ssh_run(s, "echo hi; echo oops >&2", &out, &eout,
				     &status, &err), 0);
	assert_string_equal(out.ptr, "hi\n");
	assert_string_equal(eout.ptr, "oops\n");
	assert_int_equal(status, 0);
	assert_int_equal(vps_ssh_run(s, "exit 3", NULL, NULL, &status, &err), 0);
	assert_int_equal(status, 3);
	vps_ssh_close(s);
	buf_release(&out);
	buf_release(&eout);
}

static void
test_vps__wrong_pin_never_authenticates(void **state)
{
	struct vps_ssh_opts o;
	struct vps_ssh *s = NULL;
	struct err err = ERR_INIT;
	char key[300];
	size_t before;

	(void)state;
	NEED_SSHD();
	before = count_in_log("Accepted publickey");
	opts_for(&o, key, sizeof(key));
	o.host_fingerprint = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	assert_true(vps_ssh_connect(&s, &o, &err) < 0);
	assert_null(s);
	assert_non_null(strstr(err.msg, "host key mismatch"));
	assert_non_null(strstr(err.msg, host_fp));
	usleep(200000);
	/* The key was never offered: sshd logged no login for this try. */
	assert_int_equal(count_in_log("Accepted publickey"), before);

	/* No pin and no known_hosts: refused, not accepted blindly. */
	opts_for(&o, key, sizeof(key));
	o.host_fingerprint = NULL;
	err_clear(&err);
	assert_true(vps_ssh_connect(&s, &o, &err) < 0);
	assert_non_null(strstr(err.msg, "no way to verify the host key"));
}

static void
test_vps__known_hosts_first_use_then_pinned(void **state)
{
	struct vps_ssh_opts o;
	struct vps_ssh *s = NULL;
	struct err err = ERR_INIT;
	char key[300], kh[300];

	(void)state;
	NEED_SSHD();
	snprintf(kh, sizeof(kh), "%s/known_hosts", dir);
	unlink(kh);
	opts_for(&o, key, sizeof(key));
	o.host_fingerprint = NULL;
	o.known_hosts = kh;
	/* Unknown host without accept_new: refused. */
	assert_true(vps_ssh_connect(&s, &o, &err) < 0);
	assert_non_null(strstr(err.msg, "is not in"));
	/* First use: recorded. */
	o.accept_new = true;
	err_clear(&err);
	assert_int_equal(vps_ssh_connect(&s, &o, &err), 0);
	vps_ssh_close(s);
	assert_true(fs_exists(kh));
	/* Another host key at the same address: refused even with accept_new. */
	stop(&sshd_pid);
	start_sshd("hostkey2");
	err_clear(&err);
	assert_true(vps_ssh_connect(&s, &o, &err) < 0);
	assert_non_null(strstr(err.msg, "changed"));
	stop(&sshd_pid);
	start_sshd("hostkey");
}

static void
test_vps__probe_parse(void **state)
{
	struct rescue_facts f;
	struct err err = ERR_INIT;

	(void)state;
	rescue_parse_probe(&f, "tool dd\ntool head\ntool sha256sum\nkind block\n"
			   "size 2000000000\n");
	assert_int_equal(f.kind, DISK_BLOCK);
	assert_int_equal(rescue_check_target(&f, "/dev/sda", RESCUE_METAL_RAW_BYTES,
					     false, &err), 0);
	assert_true(rescue_check_target(&f, "/dev/sda", 3000000000ULL, false, &err) < 0);
	assert_non_null(strstr(err.msg, "holds 2000000000 bytes"));

	rescue_parse_probe(&f, "tool dd\ntool head\ntool sha256sum\nkind block\n"
			   "size 2000000000\npartition\n");
	assert_true(rescue_check_target(&f, "/dev/sda1", 1, false, &err) < 0);
	assert_non_null(strstr(err.msg, "is a partition"));

	rescue_parse_probe(&f, "tool dd\ntool head\ntool sha256sum\nkind block\n"
			   "size 2000000000\nmounted /dev/sda1\n");
	assert_true(rescue_check_target(&f, "/dev/sda", 1, false, &err) < 0);
	assert_non_null(strstr(err.msg, "mounted"));

	rescue_parse_probe(&f, "tool dd\ntool head\ntool sha256sum\nkind block\n"
			   "size 2000000000\nholder md127\n");
	assert_true(rescue_check_target(&f, "/dev/sda", 1, false, &err) < 0);
	assert_non_null(strstr(err.msg, "vps.stop_raid"));
	assert_true(rescue_check_target(&f, "/dev/sda", 1, true, &err) < 0);
	assert_non_null(strstr(err.msg, "no mdadm"));
	f.has_mdadm = true;
	assert_int_equal(rescue_check_target(&f, "/dev/sda", 1, true, &err), 0);

	rescue_parse_probe(&f, "tool dd\nkind block\nsize 2000000000\nholder dm-0\n");
	assert_true(rescue_check_target(&f, "/dev/sda", 1, true, &err) < 0);
	assert_non_null(strstr(err.msg, "device-mapper"));

	rescue_parse_probe(&f, "tool dd\nkind block\nsize 2000000000\n");
	assert_true(rescue_check_target(&f, "/dev/sda", 1, false, &err) < 0);
	assert_non_null(strstr(err.msg, "lacks head sha256sum"));

	assert_int_equal(rescue_compression_of("x/metal-amd64.raw.zst"), IMG_ZSTD);
	assert_int_equal(rescue_compression_of("x/metal-amd64.raw.xz"), IMG_XZ);
	assert_int_equal(rescue_compression_of("x/metal-amd64.raw"), IMG_RAW);
}

static struct vps_ssh *
connect_port(int port)
{
	struct vps_ssh_opts o;
	struct vps_ssh *s = NULL;
	struct err err = ERR_INIT;
	static char key[300];

	opts_for(&o, key, sizeof(key));
	o.port = port;
	if (vps_ssh_connect(&s, &o, &err) < 0)
		fail_msg("connect: %s", err.msg);
	return s;
}

static struct vps_ssh *
connect_ok(void)
{
	return connect_port(ssh_port);
}

enum how { STREAM, BEST_FULL, BEST_BARE, BEST_DEC };
static bool last_fetched;

/* Write NAME (under www/) to a fresh disk file of disk_bytes; return rc. */
static int
write_how(enum how how, const char *name, size_t disk_bytes, struct err *err,
	  char *disk, size_t dn)
{
	struct vps_ssh *s = connect_port(how == BEST_BARE ? bare_port :
					 how == BEST_DEC ? dec_port : ssh_port);
	struct rescue_facts f;
	struct rescue_write_opts wo;
	struct rescue_result res;
	char url[300];
	static int seq;
	FILE *fp;
	int r;

	snprintf(disk, dn, "%s/disk%d.img", dir, ++seq);
	fp = fopen(disk, "w");
	assert_non_null(fp);
	assert_int_equal(ftruncate(fileno(fp), (off_t)disk_bytes), 0);
	fclose(fp);
	if ((r = rescue_probe(s, disk, &f, err)) < 0)
		goto out;
	assert_int_equal(f.kind, DISK_FILE);
	assert_int_equal(f.size, disk_bytes);
	if ((r = rescue_check_target(&f, disk, image_len, false, err)) < 0)
		goto out;
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/%s", http_port, name);
	memset(&wo, 0, sizeof(wo));
	wo.url = url;
	wo.disk = disk;
	wo.max_bytes = f.size;
	if (how == STREAM)
		r = rescue_write_image(s, &wo, &res, err);
	else
		r = rescue_install_image(s, &f, &wo, &res, &last_fetched, err);
	if (r < 0)
		goto out;
	assert_int_equal(res.bytes, image_len);
	r = rescue_verify(s, disk, &res, err);
out:
	vps_ssh_close(s);
	return r;
}

static int
write_one(const char *name, size_t disk_bytes, struct err *err, char *disk,
	  size_t dn)
{
	return write_how(STREAM, name, disk_bytes, err, disk, dn);
}

static void
assert_disk_is_image(const char *disk)
{
	struct buf b = BUF_INIT;
	struct err err = ERR_INIT;

	assert_int_equal(fs_read_file(&b, disk, 64u << 20, &err), 0);
	/* dd conv=notrunc: the file keeps its size, as a disk does */
	assert_true(b.len >= image_len);
	assert_memory_equal(b.ptr, image, image_len);
	buf_release(&b);
}

static void
test_vps__write_zstd_xz_raw_and_verify(void **state)
{
	struct err err = ERR_INIT;
	char disk[400];
	const char *names[] = { "metal-amd64.raw.zst", "metal-amd64.raw.xz",
				"metal-amd64.raw" };
	size_t i;

	(void)state;
	NEED_SSHD();
	for (i = 0; i < 3; i++) {
		err_clear(&err);
		if (write_one(names[i], 8u << 20, &err, disk, sizeof(disk)) < 0)
			fail_msg("%s: %s", names[i], err.msg);
		assert_disk_is_image(disk);
		unlink(disk);
	}
}

static void
test_vps__bad_targets_and_streams_fail_loudly(void **state)
{
	struct err err = ERR_INIT;
	struct vps_ssh *s;
	struct rescue_facts f;
	char disk[400];

	(void)state;
	NEED_SSHD();
	/* Too small: refused before a byte is written. */
	assert_true(write_one("metal-amd64.raw.zst", 1u << 20, &err, disk,
			      sizeof(disk)) < 0);
	assert_non_null(strstr(err.msg, "the image needs"));
	unlink(disk);

	/* A download cut in the middle: an error that says the disk is
	 * partial, never a success. */
	err_clear(&err);
	assert_true(write_one("truncated.raw.zst", 8u << 20, &err, disk,
			      sizeof(disk)) < 0);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_non_null(strstr(err.msg, "partial image"));
	unlink(disk);

	/* A URL that is not there. */
	err_clear(&err);
	assert_true(write_one("nosuch.raw.zst", 8u << 20, &err, disk,
			      sizeof(disk)) < 0);
	assert_non_null(strstr(err.msg, "404"));
	unlink(disk);

	/* A disk path that does not exist, and one we refuse to quote. */
	s = connect_ok();
	err_clear(&err);
	assert_int_equal(rescue_probe(s, "/dev/strata-nosuch", &f, &err), 0);
	assert_true(rescue_check_target(&f, "/dev/strata-nosuch", 1, false, &err) < 0);
	assert_non_null(strstr(err.msg, "does not exist"));
	err_clear(&err);
	assert_true(rescue_probe(s, "/dev/sda; reboot", &f, &err) < 0);
	assert_non_null(strstr(err.msg, "not a device path"));
	vps_ssh_close(s);
}

static void
test_vps__host_fetches_itself_else_strata_streams(void **state)
{
	struct err err = ERR_INIT;
	char disk[400];
	const char *names[] = { "metal-amd64.raw.zst", "metal-amd64.raw.xz" };
	size_t i;

	(void)state;
	NEED_SSHD();
	for (i = 0; i < 2; i++) {
		/* This host has curl, zstd and xz: it downloads itself. */
		err_clear(&err);
		if (write_how(BEST_FULL, names[i], 8u << 20, &err, disk,
			      sizeof(disk)) < 0)
			fail_msg("%s: %s", names[i], err.msg);
		assert_true(last_fetched);
		assert_disk_is_image(disk);
		unlink(disk);
		/* A host without them: strata streams instead. */
		err_clear(&err);
		if (write_how(BEST_BARE, names[i], 8u << 20, &err, disk,
			      sizeof(disk)) < 0)
			fail_msg("bare %s: %s", names[i], err.msg);
		assert_false(last_fetched);
		assert_disk_is_image(disk);
		unlink(disk);
	}
	/* The host's own download cut short or missing: loud errors. */
	err_clear(&err);
	assert_true(write_how(BEST_FULL, "truncated.raw.zst", 8u << 20, &err,
			      disk, sizeof(disk)) < 0);
	assert_true(last_fetched);
	assert_non_null(strstr(err.msg, "decompression failed"));
	assert_non_null(strstr(err.msg, "partial image"));
	unlink(disk);
	err_clear(&err);
	assert_true(write_how(BEST_FULL, "nosuch.raw.zst", 8u << 20, &err,
			      disk, sizeof(disk)) < 0);
	assert_non_null(strstr(err.msg, "download (curl) failed"));
	unlink(disk);
}

static void
test_vps__host_without_curl_decompresses_the_stream(void **state)
{
	struct err err = ERR_INIT;
	char disk[400], used[400];
	struct buf b = BUF_INIT;

	(void)state;
	NEED_SSHD();
	/* zstd but no curl: strata streams the compressed image, the host
	 * decompresses it into dd. */
	snprintf(used, sizeof(used), "%s/zstd.used", dir);
	unlink(used);
	if (write_how(BEST_DEC, "metal-amd64.raw.zst", 8u << 20, &err, disk,
		      sizeof(disk)) < 0)
		fail_msg("dec: %s", err.msg);
	assert_false(last_fetched);
	assert_disk_is_image(disk);
	unlink(disk);
	assert_int_equal(fs_read_file(&b, used, 4096, &err), 0);
	assert_non_null(strstr(b.ptr, "-dc"));
	buf_release(&b);
	/* The host's decompressor failing at the end: a loud error, never
	 * a write that passes (its xz reads it all, writes nothing, exits 1,
	 * and dd exits 0). */
	err_clear(&err);
	assert_true(write_how(BEST_DEC, "metal-amd64.raw.xz", 8u << 20, &err,
			      disk, sizeof(disk)) < 0);
	assert_false(last_fetched);
	assert_non_null(strstr(err.msg, "decompression (xz -dc) failed"));
	assert_non_null(strstr(err.msg, "xz: broken"));
	assert_non_null(strstr(err.msg, "partial image"));
	unlink(disk);
	/* A cut download is caught by strata's own copy before the host's. */
	err_clear(&err);
	assert_true(write_how(BEST_DEC, "truncated.raw.zst", 8u << 20, &err,
			      disk, sizeof(disk)) < 0);
	assert_non_null(strstr(err.msg, "truncated"));
	assert_non_null(strstr(err.msg, "partial image"));
	unlink(disk);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vps__probe_parse),
		cmocka_unit_test(test_vps__run_commands_with_pinned_key),
		cmocka_unit_test(test_vps__wrong_pin_never_authenticates),
		cmocka_unit_test(test_vps__known_hosts_first_use_then_pinned),
		cmocka_unit_test(test_vps__write_zstd_xz_raw_and_verify),
		cmocka_unit_test(test_vps__bad_targets_and_streams_fail_loudly),
		cmocka_unit_test(test_vps__host_fetches_itself_else_strata_streams),
		cmocka_unit_test(test_vps__host_without_curl_decompresses_the_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
