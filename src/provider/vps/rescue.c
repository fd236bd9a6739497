#include "provider/vps/rescue.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <lzma.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "util/buf.h"

#define PROGRESS_STEP (64ULL << 20)

enum rescue_compression
rescue_compression_of(const char *url)
{
	size_t n = strlen(url);

	if (n > 4 && !strcmp(url + n - 4, ".zst"))
		return IMG_ZSTD;
	if (n > 3 && !strcmp(url + n - 3, ".xz"))
		return IMG_XZ;
	return IMG_RAW;
}

/* A disk path we are willing to put into a remote command at all. */
static bool
disk_path_ok(const char *d)
{
	if (!d || d[0] != '/' || strlen(d) > 200)
		return false;
	for (; *d; d++)
		if (!((*d >= 'a' && *d <= 'z') || (*d >= 'A' && *d <= 'Z') ||
		      (*d >= '0' && *d <= '9') || strchr("/_.+-:", *d)))
			return false;
	return true;
}

/*
 * The probe, one round trip. Prints "tool NAME" per tool found, then
 * "kind block|file|other|missing", "size BYTES", "partition",
 * "holder NAME" and "mounted DEV" lines. $1 is the disk.
 */
static const char probe_script[] =
	"for t in curl wget zstd xz dd sha256sum head mdadm; do "
	"command -v $t >/dev/null 2>&1 && echo \"tool $t\"; done; "
	"d=\"$1\"; "
	"if [ -b \"$d\" ]; then "
	"  echo kind block; r=$(readlink -f \"$d\"); n=${r##*/}; "
	"  s=$(cat /sys/class/block/$n/size 2>/dev/null); "
	"  [ -n \"$s\" ] && echo \"size $((s * 512))\"; "
	"  [ -e /sys/class/block/$n/partition ] && echo partition; "
	"  for h in /sys/class/block/$n/holders/* /sys/class/block/$n/$n*/holders/*; do "
	"    [ -e \"$h\" ] && echo \"holder ${h##*/}\"; done; "
	"  while read -r dev rest; do case \"$dev\" in \"$r\"*) echo \"mounted $dev\";; esac; "
	"  done < /proc/mounts; "
	"  while read -r dev rest; do case \"$dev\" in \"$r\"*) echo \"mounted $dev\";; esac; "
	"  done < /proc/swaps; "
	"elif [ -f \"$d\" ]; then echo kind file; echo \"size $(wc -c < \"$d\")\"; "
	"elif [ -e \"$d\" ]; then echo kind other; "
	"else echo kind missing; fi";

void
rescue_parse_probe(struct rescue_facts *f, const char *text)
{
	const char *p = text;

	memset(f, 0, sizeof(*f));
	while (*p) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char line[300];

		snprintf(line, sizeof(line), "%.*s", (int)(n < 299 ? n : 299), p);
		p += n + (nl ? 1 : 0);
		if (!strncmp(line, "tool ", 5)) {
			const char *t = line + 5;

			f->has_curl |= !strcmp(t, "curl");
			f->has_wget |= !strcmp(t, "wget");
			f->has_zstd |= !strcmp(t, "zstd");
			f->has_xz |= !strcmp(t, "xz");
			f->has_dd |= !strcmp(t, "dd");
			f->has_sha256sum |= !strcmp(t, "sha256sum");
			f->has_head |= !strcmp(t, "head");
			f->has_mdadm |= !strcmp(t, "mdadm");
		} else if (!strcmp(line, "kind block")) {
			f->kind = DISK_BLOCK;
		} else if (!strcmp(line, "kind file")) {
			f->kind = DISK_FILE;
		} else if (!strcmp(line, "kind other")) {
			f->kind = DISK_OTHER;
		} else if (!strncmp(line, "size ", 5)) {
			f->size = strtoull(line + 5, NULL, 10);
		} else if (!strcmp(line, "partition")) {
			f->partition = true;
		} else if (!strncmp(line, "mounted ", 8)) {
			f->mounted = true;
		} else if (!strncmp(line, "holder ", 7)) {
			size_t l = strlen(f->holders);

			snprintf(f->holders + l, sizeof(f->holders) - l, "%s%s",
				 l ? " " : "", line + 7);
		}
	}
}

int
rescue_probe(struct vps_ssh *s, const char *disk, struct rescue_facts *f,
	     struct err *err)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT, eout = BUF_INIT;
	int status, r;

	memset(f, 0, sizeof(*f));
	if (!disk_path_ok(disk))
		return err_set(err, ERR_USAGE, "vps.disk '%s' is not a device "
			       "path such as /dev/sda", disk ? disk : "");
	buf_adds(&cmd, "sh -c ");
	vps_sh_quote(&cmd, probe_script);
	buf_adds(&cmd, " probe ");
	vps_sh_quote(&cmd, disk);
	r = vps_ssh_run(s, cmd.ptr, &out, &eout, &status, err);
	if (r == 0 && status != 0)
		r = err_set(err, ERR_FAIL, "probing the rescue system failed "
			    "(exit %d): %.300s", status, eout.ptr);
	if (r == 0)
		rescue_parse_probe(f, out.ptr);
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&eout);
	return r;
}

static bool
holders_all_md(const char *h)
{
	const char *p = h;

	while (*p) {
		if (strncmp(p, "md", 2))
			return false;
		p = strchr(p, ' ');
		if (!p)
			break;
		p++;
	}
	return true;
}

int
rescue_check_target(const struct rescue_facts *f, const char *disk,
		    uint64_t image_bytes, bool stop_raid, struct err *err)
{
	char missing[80] = "";

	switch (f->kind) {
	case DISK_MISSING:
		return err_set(err, ERR_FAIL, "disk '%s' does not exist on the "
			       "rescue system; list the disks with 'lsblk -d -o "
			       "NAME,SIZE,MODEL' there and set vps.disk", disk);
	case DISK_OTHER:
		return err_set(err, ERR_FAIL, "'%s' is neither a block device nor "
			       "a file; set vps.disk to the whole disk (e.g. "
			       "/dev/sda, /dev/nvme0n1)", disk);
	default:
		break;
	}
	if (f->partition)
		return err_set(err, ERR_FAIL, "'%s' is a partition; the Talos "
			       "image carries its own partition table, so set "
			       "vps.disk to the whole disk", disk);
	if (f->mounted)
		return err_set(err, ERR_FAIL, "'%s' (or one of its partitions) is "
			       "mounted or used as swap on the rescue system; "
			       "unmount it (or pick another disk), then run apply "
			       "again", disk);
	if (f->holders[0]) {
		if (!holders_all_md(f->holders))
			return err_set(err, ERR_FAIL, "'%s' is in use by %s "
				       "(device-mapper/LVM); remove those first",
				       disk, f->holders);
		if (!stop_raid)
			return err_set(err, ERR_FAIL, "'%s' is part of software "
				       "RAID %s (left by the provider's OS); set "
				       "vps.stop_raid: true to let strata stop it "
				       "with mdadm, or stop it yourself", disk,
				       f->holders);
		if (!f->has_mdadm)
			return err_set(err, ERR_FAIL, "'%s' is part of RAID %s but "
				       "the rescue system has no mdadm", disk,
				       f->holders);
	}
	if (f->size < image_bytes)
		return err_set(err, ERR_FAIL, "disk '%s' holds %" PRIu64 " bytes; "
			       "the image needs %" PRIu64, disk, f->size,
			       image_bytes);
	if (!f->has_dd)
		strcat(missing, " dd");
	if (!f->has_head)
		strcat(missing, " head");
	if (!f->has_sha256sum)
		strcat(missing, " sha256sum");
	if (missing[0])
		return err_set(err, ERR_FAIL, "the rescue system lacks%s, needed "
			       "to write and verify the image", missing);
	return 0;
}

int
rescue_stop_raid(struct vps_ssh *s, const struct rescue_facts *f,
		 struct err *err)
{
	struct buf cmd = BUF_INIT, eout = BUF_INIT;
	const char *p = f->holders;
	int status = 0, r = 0;

	while (*p && r == 0) {
		const char *sp = strchr(p, ' ');
		size_t n = sp ? (size_t)(sp - p) : strlen(p);
		char dev[64];

		snprintf(dev, sizeof(dev), "/dev/%.*s", (int)(n < 50 ? n : 50), p);
		buf_reset(&cmd);
		buf_adds(&cmd, "mdadm --stop ");
		vps_sh_quote(&cmd, dev);
		r = vps_ssh_run(s, cmd.ptr, NULL, &eout, &status, err);
		if (r == 0 && status != 0)
			r = err_set(err, ERR_FAIL, "mdadm --stop %s failed: %.300s",
				    dev, eout.ptr);
		p += n + (sp ? 1 : 0);
	}
	buf_release(&cmd);
	buf_release(&eout);
	return r;
}

/*
 * The SSH side of a write on its own thread, so the download, the
 * decompression and the hash overlap the encryption and sending: the
 * producer fills 1 MiB slots (the decompressors write straight into
 * them), the sender writes them in order, one channel write per slot.
 * Only the sender touches the SSH session while it runs.
 *
 * 16 MiB queued, as 16 slots of 1 MiB: the first byte leaves after
 * 1 MiB rather than 4. bench/vps.sh showed no wall-time difference to 4
 * slots of 4 MiB or to 32 of 1 MiB on loopback (docs/vps.md, "Where the
 * streamed write's time goes").
 */
#define Q_SLOTS 16
#define Q_SLOT  (1u << 20)

struct sendq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct vps_ssh_stream *st;
	unsigned char *slot[Q_SLOTS];
	size_t len[Q_SLOTS];
	unsigned head, tail, count;   /* count slots committed, not yet sent */
	bool done, stop, failed, started;
	struct err err;               /* the sender's failure */
	pthread_t th;
};

static void *
sender(void *arg)
{
	struct sendq *q = arg;

	pthread_mutex_lock(&q->mu);
	for (;;) {
		unsigned i;
		size_t n;

		while (!q->count && !q->done && !q->stop)
			pthread_cond_wait(&q->cv, &q->mu);
		if (q->stop || !q->count)
			break;
		i = q->head;
		n = q->len[i];
		pthread_mutex_unlock(&q->mu);
		if (vps_ssh_stream_write(q->st, q->slot[i], n, &q->err) < 0) {
			pthread_mutex_lock(&q->mu);
			q->failed = true;
			pthread_cond_broadcast(&q->cv);
			break;
		}
		pthread_mutex_lock(&q->mu);
		q->head = (q->head + 1) % Q_SLOTS;
		q->count--;
		pthread_cond_broadcast(&q->cv);
	}
	pthread_mutex_unlock(&q->mu);
	return NULL;
}

static int
sendq_start(struct sendq *q, struct vps_ssh_stream *st, struct err *err)
{
	int i;

	memset(q, 0, sizeof(*q));
	q->st = st;
	q->err = (struct err)ERR_INIT;
	for (i = 0; i < Q_SLOTS; i++)
		q->slot[i] = xmalloc(Q_SLOT);
	pthread_mutex_init(&q->mu, NULL);
	pthread_cond_init(&q->cv, NULL);
	if (pthread_create(&q->th, NULL, sender, q) != 0)
		return err_set(err, ERR_FAIL, "cannot start the sending thread");
	q->started = true;
	return 0;
}

/* Commit the slot being filled; waits for a free one. -1: the sender failed. */
static int
sendq_commit(struct sendq *q, struct err *err)
{
	int r = 0;

	pthread_mutex_lock(&q->mu);
	if (q->len[q->tail]) {
		q->tail = (q->tail + 1) % Q_SLOTS;
		q->count++;
		pthread_cond_broadcast(&q->cv);
	}
	while (q->count == Q_SLOTS && !q->failed)
		pthread_cond_wait(&q->cv, &q->mu);
	if (q->failed) {
		*err = q->err;
		r = -1;
	} else {
		q->len[q->tail] = 0;
	}
	pthread_mutex_unlock(&q->mu);
	return r;
}

/* The free part of the slot being filled (never empty). */
static unsigned char *
sendq_room(struct sendq *q, size_t *room)
{
	*room = Q_SLOT - q->len[q->tail];
	return q->slot[q->tail] + q->len[q->tail];
}

/* n bytes were written at sendq_room's pointer; a full slot is committed. */
static int
sendq_wrote(struct sendq *q, size_t n, struct err *err)
{
	q->len[q->tail] += n;
	if (q->len[q->tail] == Q_SLOT)
		return sendq_commit(q, err);
	return 0;
}

/* Send what is left and stop the sender (stop: drop what is queued).
 * Afterwards the SSH session is the caller's again. */
static int
sendq_end(struct sendq *q, bool stop, struct err *err)
{
	int r = 0, i;

	if (!q->started)
		goto out;
	if (!stop && sendq_commit(q, err) < 0)
		stop = true, r = -1;
	pthread_mutex_lock(&q->mu);
	q->done = true;
	q->stop = stop;
	pthread_cond_broadcast(&q->cv);
	pthread_mutex_unlock(&q->mu);
	pthread_join(q->th, NULL);
	if (!stop && q->failed) {
		*err = q->err;
		r = -1;
	}
	pthread_mutex_destroy(&q->mu);
	pthread_cond_destroy(&q->cv);
	q->started = false;
out:
	for (i = 0; i < Q_SLOTS; i++) {
		free(q->slot[i]);
		q->slot[i] = NULL;
	}
	return r;
}

/* One download: curl's bytes -> decompressor -> SHA-256 -> SSH stream. */
struct writer {
	const struct rescue_write_opts *o;
	struct vps_ssh_stream *st;
	struct sendq q;
	enum rescue_compression comp;
	ZSTD_DStream *zs;
	size_t zlast;              /* last ZSTD_decompressStream result: 0 at a frame's end */
	lzma_stream xz;
	EVP_MD_CTX *md;
	uint64_t written, next_report;
	curl_off_t dl_total;
	struct err *err;
	bool failed;
	bool host_dec;             /* the host decompresses (o->host_decompresses) */
	unsigned char *scratch;    /* then our own copy is decompressed here */
};

/* n bytes of the image at p: counted (never past the disk) and hashed. */
static int
account(struct writer *w, const unsigned char *p, size_t n)
{
	if (w->o->max_bytes && w->written + n > w->o->max_bytes) {
		err_set(w->err, ERR_FAIL, "the image is larger than disk '%s' "
			"(%" PRIu64 " bytes)", w->o->disk, w->o->max_bytes);
		return -1;
	}
	if (EVP_DigestUpdate(w->md, p, n) != 1) {
		err_set(w->err, ERR_FAIL, "sha256 failed");
		return -1;
	}
	w->written += n;
	if (w->o->progress && w->written >= w->next_report) {
		w->o->progress(w->o->ctx, w->written, (uint64_t)w->dl_total);
		w->next_report = w->written + PROGRESS_STEP;
	}
	return 0;
}

/* n bytes for the host: copied into the send queue. */
static int
send_copy(struct writer *w, const unsigned char *p, size_t n)
{
	while (n) {
		size_t room, k;
		unsigned char *dst = sendq_room(&w->q, &room);

		k = n < room ? n : room;
		memcpy(dst, p, k);
		if (sendq_wrote(&w->q, k, w->err) < 0)
			return -1;
		p += k;
		n -= k;
	}
	return 0;
}

/* Where a decompressor writes: straight into the send queue, or into
 * scratch when the host gets the compressed bytes instead. */
static unsigned char *
dec_out(struct writer *w, size_t *room)
{
	if (w->host_dec) {
		*room = Q_SLOT;
		return w->scratch;
	}
	return sendq_room(&w->q, room);
}

/* A decompressor wrote n image bytes at p (from dec_out). */
static int
dec_wrote(struct writer *w, const unsigned char *p, size_t n)
{
	if (!n)
		return 0;
	if (account(w, p, n) < 0)
		return -1;
	return w->host_dec ? 0 : sendq_wrote(&w->q, n, w->err);
}

/* One xz step into dec_out; rc: lzma_code's result. */
static int
xz_step(struct writer *w, lzma_action act, lzma_ret *rc)
{
	size_t room;
	unsigned char *dst = dec_out(w, &room);

	w->xz.next_out = dst;
	w->xz.avail_out = room;
	*rc = lzma_code(&w->xz, act);
	return dec_wrote(w, dst, room - w->xz.avail_out);
}

static int decode(struct writer *w, const unsigned char *p, size_t n);

/* Bytes of the download, in order. When the host decompresses, they
 * are sent once our copy of them decoded within the disk's size. */
static int
feed(struct writer *w, const unsigned char *p, size_t n)
{
	if (w->comp == IMG_RAW)
		return account(w, p, n) < 0 ? -1 : send_copy(w, p, n);
	if (decode(w, p, n) < 0)
		return -1;
	return w->host_dec ? send_copy(w, p, n) : 0;
}

static int
decode(struct writer *w, const unsigned char *p, size_t n)
{
	if (w->comp == IMG_ZSTD) {
		ZSTD_inBuffer in = { p, n, 0 };

		/* until the input is used and the decoder holds no output
		 * (a full output buffer may leave some inside; 0: a frame
		 * ended and all of it is out, and one more call would read
		 * as the start of another) */
		for (;;) {
			size_t room;
			unsigned char *dst = dec_out(w, &room);
			ZSTD_outBuffer ob = { dst, room, 0 };
			size_t rc = ZSTD_decompressStream(w->zs, &ob, &in);

			if (ZSTD_isError(rc)) {
				err_set(w->err, ERR_FAIL, "the image is not valid "
					"zstd: %s", ZSTD_getErrorName(rc));
				return -1;
			}
			w->zlast = rc;
			if (dec_wrote(w, dst, ob.pos) < 0)
				return -1;
			if (in.pos == in.size && (ob.pos < ob.size || rc == 0))
				return 0;
		}
	}
	w->xz.next_in = p;
	w->xz.avail_in = n;
	while (w->xz.avail_in) {
		lzma_ret rc;

		if (xz_step(w, LZMA_RUN, &rc) < 0)
			return -1;
		if (rc != LZMA_OK && rc != LZMA_STREAM_END) {
			err_set(w->err, ERR_FAIL, "the image is not valid xz "
				"(liblzma error %d)", (int)rc);
			return -1;
		}
		if (rc == LZMA_STREAM_END)
			break;
	}
	return 0;
}

/* The end of the compressed stream: flush what the decoder still holds. */
static int
finish(struct writer *w)
{
	if (w->comp == IMG_XZ) {
		for (;;) {
			lzma_ret rc;

			w->xz.next_in = NULL;
			w->xz.avail_in = 0;
			if (xz_step(w, LZMA_FINISH, &rc) < 0)
				return -1;
			if (rc == LZMA_STREAM_END)
				return 0;
			if (rc != LZMA_OK)
				return err_set(w->err, ERR_FAIL, "the image's xz "
					       "stream is truncated or corrupt "
					       "(liblzma error %d)", (int)rc);
		}
	}
	/* feed() flushed all output; a frame ended only when the decoder
	 * said 0 (else it still wanted input). */
	if (w->comp == IMG_ZSTD && w->zlast != 0)
		return err_set(w->err, ERR_FAIL, "the image's zstd stream is "
			       "truncated");
	return 0;
}

static size_t
on_data(char *p, size_t size, size_t nmemb, void *arg)
{
	struct writer *w = arg;

	if (w->failed)
		return 0;
	if (feed(w, (const unsigned char *)p, size * nmemb) < 0) {
		w->failed = true;
		return 0;
	}
	return size * nmemb;
}

static int
on_xfer(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	curl_off_t ulnow)
{
	struct writer *w = arg;

	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	w->dl_total = dltotal;
	return 0;
}

static int
download(struct writer *w, struct err *err)
{
	CURL *h = curl_easy_init();
	char ebuf[CURL_ERROR_SIZE] = "";
	CURLcode rc;
	long code = 0;
	int r = 0;

	if (!h)
		return err_set(err, ERR_FAIL, "curl init failed");
	if (curl_easy_setopt(h, CURLOPT_URL, w->o->url) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK ||
	    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK ||
	    (w->o->ca_file &&
	     (curl_easy_setopt(h, CURLOPT_CAINFO, w->o->ca_file) != CURLE_OK ||
	      curl_easy_setopt(h, CURLOPT_CAPATH, NULL) != CURLE_OK))) {
		curl_easy_cleanup(h);
		return err_set(err, ERR_FAIL, "cannot set up the image download");
	}
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 15000L);
	/* A stalled download (under 1 KiB/s for a minute) is a failure. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
	/* Bigger reads, fewer SSH writes (16 KiB by default). */
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_xfer);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	rc = curl_easy_perform(h);
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
	if (w->failed)
		r = -1;   /* err already says why */
	else if (rc != CURLE_OK)
		r = err_set(err, ERR_FAIL, "download %s: %s", w->o->url,
			    ebuf[0] ? ebuf : curl_easy_strerror(rc));
	curl_easy_cleanup(h);
	return r;
}

/*
 * The stream when the host decompresses: $1 disk, $2 decompressor ("zstd
 * -dc" or "xz -dc"). Prints "dec STATUS" (the decompressor's) and "dd
 * STATUS"; exits with dd's. A cut or corrupt stream fails the
 * decompressor, so a short disk never passes for a written one.
 */
static const char host_dec_script[] =
	"exec 3>&1; { $2; echo \"dec $?\" >&3; } | "
	"dd of=\"$1\" bs=4M conv=notrunc,fsync; s=$?; echo \"dd $s\"; exit $s";

int
rescue_write_image(struct vps_ssh *s, const struct rescue_write_opts *o,
		   struct rescue_result *res, struct err *err)
{
	struct writer w;
	struct buf cmd = BUF_INIT, sout = BUF_INIT, eout = BUF_INIT;
	lzma_stream xz_init = LZMA_STREAM_INIT;
	unsigned int hl = 0;
	int status = -1, r;

	memset(res, 0, sizeof(*res));
	memset(&w, 0, sizeof(w));
	if (!disk_path_ok(o->disk))
		return err_set(err, ERR_USAGE, "vps.disk '%s' is not a device path",
			       o->disk ? o->disk : "");
	w.o = o;
	w.err = err;
	w.comp = rescue_compression_of(o->url);
	w.xz = xz_init;
	w.md = EVP_MD_CTX_new();
	w.next_report = PROGRESS_STEP;
	if (!w.md || EVP_DigestInit_ex(w.md, EVP_sha256(), NULL) != 1) {
		r = err_set(err, ERR_FAIL, "sha256 init failed");
		goto out;
	}
	w.zlast = 1;
	if (w.comp == IMG_ZSTD && !(w.zs = ZSTD_createDStream())) {
		r = err_set(err, ERR_FAIL, "zstd init failed");
		goto out;
	}
	if (w.comp == IMG_XZ &&
	    lzma_stream_decoder(&w.xz, UINT64_MAX, LZMA_CONCATENATED) != LZMA_OK) {
		r = err_set(err, ERR_FAIL, "xz init failed");
		goto out;
	}
	w.host_dec = o->host_decompresses && w.comp != IMG_RAW;
	if (w.host_dec) {
		w.scratch = xmalloc(Q_SLOT);
		buf_adds(&cmd, "sh -c ");
		vps_sh_quote(&cmd, host_dec_script);
		buf_adds(&cmd, " write ");
		vps_sh_quote(&cmd, o->disk);
		buf_adds(&cmd, w.comp == IMG_ZSTD ? " 'zstd -dc'" : " 'xz -dc'");
	} else {
		buf_adds(&cmd, "exec dd of=");
		vps_sh_quote(&cmd, o->disk);
		buf_adds(&cmd, " bs=4M conv=notrunc,fsync");
	}
	if ((r = vps_ssh_stream_open(&w.st, s, cmd.ptr, err)) < 0)
		goto out;
	if ((r = sendq_start(&w.q, w.st, err)) == 0) {
		r = download(&w, err);
		if (r == 0)
			r = finish(&w);
	}
	{
		struct err qe = ERR_INIT;

		/* the sender's failure, when it is the first */
		if (sendq_end(&w.q, r < 0, &qe) < 0 && r == 0) {
			*err = qe;
			r = -1;
		}
	}
	if (r < 0) {
		vps_ssh_stream_abort(w.st);
		w.st = NULL;
		err_wrap(err, "writing the image to '%s' stopped after %" PRIu64
			 " bytes: the disk now holds a partial image and will not "
			 "boot; run apply again to rewrite it", o->disk, w.written);
		goto out;
	}
	r = vps_ssh_stream_close(w.st, &sout, &eout, &status, err);
	w.st = NULL;
	/* dd first: a failing dd makes the decompressor fail too (SIGPIPE) */
	if (r == 0 && status == 0 && w.host_dec && !strstr(sout.ptr, "dec 0\n"))
		r = err_set(err, ERR_FAIL, "the rescue system's decompression (%s) "
			    "failed (%.40s)%s%.300s: the disk holds a partial "
			    "image; run apply again to rewrite it",
			    w.comp == IMG_ZSTD ? "zstd -dc" : "xz -dc",
			    sout.len ? sout.ptr : "no status",
			    eout.len ? ": " : "", eout.ptr);
	else if (r == 0 && status != 0)
		r = err_set(err, ERR_FAIL, "dd of=%s exited %d after %" PRIu64
			    " bytes%s%.300s: the disk holds a partial image; run "
			    "apply again to rewrite it", o->disk, status, w.written,
			    eout.len ? ": " : "", eout.ptr);
	if (r < 0)
		goto out;
	if (EVP_DigestFinal_ex(w.md, res->sha256, &hl) != 1) {
		r = err_set(err, ERR_FAIL, "sha256 failed");
		goto out;
	}
	res->bytes = w.written;
	if (o->progress)
		o->progress(o->ctx, w.written, (uint64_t)w.dl_total);
out:
	if (w.zs)
		ZSTD_freeDStream(w.zs);
	lzma_end(&w.xz);
	EVP_MD_CTX_free(w.md);
	free(w.scratch);
	buf_release(&cmd);
	buf_release(&sout);
	buf_release(&eout);
	return r;
}

int
rescue_verify(struct vps_ssh *s, const char *disk,
	      const struct rescue_result *res, struct err *err)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT, eout = BUF_INIT;
	char want[65];
	int status = -1, r, i;

	for (i = 0; i < 32; i++)
		snprintf(want + 2 * i, 3, "%02x", res->sha256[i]);
	buf_addf(&cmd, "head -c %" PRIu64 " ", res->bytes);
	vps_sh_quote(&cmd, disk);
	buf_adds(&cmd, " | sha256sum");
	r = vps_ssh_run(s, cmd.ptr, &out, &eout, &status, err);
	if (r == 0 && status != 0)
		r = err_set(err, ERR_FAIL, "reading back '%s' failed (exit %d): "
			    "%.300s", disk, status, eout.ptr);
	if (r == 0 && (out.len < 64 || memcmp(out.ptr, want, 64)))
		r = err_set(err, ERR_FAIL, "the first %" PRIu64 " bytes of '%s' do "
			    "not match the image (sha256 %.64s on the disk, %s "
			    "sent): the write did not stick; check the disk and "
			    "run apply again", res->bytes, disk, out.ptr, want);
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&eout);
	return r;
}

bool
rescue_host_decompresses(const struct rescue_facts *f,
			 const struct rescue_write_opts *o)
{
	enum rescue_compression c = rescue_compression_of(o->url);

	return (c == IMG_ZSTD && f->has_zstd) || (c == IMG_XZ && f->has_xz);
}

bool
rescue_can_fetch(const struct rescue_facts *f, const struct rescue_write_opts *o)
{
	enum rescue_compression c = rescue_compression_of(o->url);

	if (!f->has_curl || o->ca_file)
		return false;
	return c == IMG_RAW || (c == IMG_ZSTD && f->has_zstd) ||
	       (c == IMG_XZ && f->has_xz);
}

/*
 * $1 URL, $2 disk, $3 decompressor ("zstd -dc", "xz -dc" or "cat"). Each
 * stage writes its status to a file in a private temp folder; the stream
 * is teed to sha256sum and wc through fifos. Prints "ok BYTES HASH" or
 * "fail STAGE STATUS" and a few lines of the failing stage's stderr.
 */
static const char fetch_script[] =
	"t=$(mktemp -d) || exit 1; trap 'rm -rf \"$t\"' EXIT; "
	"mkfifo \"$t/h\" \"$t/n\" || exit 1; "
	"sha256sum < \"$t/h\" > \"$t/hash\" & hp=$!; "
	"wc -c < \"$t/n\" > \"$t/bytes\" & np=$!; "
	"{ curl -fsSL --proto '=http,https' --proto-redir '=https' \"$1\" 2>\"$t/curl.err\"; echo $? > \"$t/curl\"; } | "
	"{ $3 2>\"$t/dec.err\"; echo $? > \"$t/dec\"; } | "
	"tee \"$t/h\" \"$t/n\" 2>/dev/null | "
	"{ dd of=\"$2\" bs=4M conv=notrunc,fsync 2>\"$t/dd.err\"; echo $? > \"$t/dd\"; }; "
	"wait $hp $np; "
	"for s in curl dec dd; do v=$(cat \"$t/$s\"); if [ \"$v\" != 0 ]; then "
	"echo \"fail $s $v\"; tail -n 3 \"$t/$s.err\"; exit 0; fi; done; "
	"echo \"ok $(cat \"$t/bytes\") $(cut -d' ' -f1 \"$t/hash\")\"";

static int
hex_to_sha(unsigned char out[32], const char *hex)
{
	int i;

	for (i = 0; i < 32; i++) {
		unsigned int v;

		if (sscanf(hex + 2 * i, "%2x", &v) != 1)
			return -1;
		out[i] = (unsigned char)v;
	}
	return 0;
}

int
rescue_fetch_image(struct vps_ssh *s, const struct rescue_write_opts *o,
		   struct rescue_result *res, struct err *err)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT, eout = BUF_INIT;
	enum rescue_compression c = rescue_compression_of(o->url);
	unsigned long long bytes = 0;
	char stage[16] = "", hash[65] = "";
	int status = -1, code = 0, r;

	memset(res, 0, sizeof(*res));
	if (!disk_path_ok(o->disk))
		return err_set(err, ERR_USAGE, "vps.disk '%s' is not a device path",
			       o->disk ? o->disk : "");
	buf_adds(&cmd, "sh -c ");
	vps_sh_quote(&cmd, fetch_script);
	buf_adds(&cmd, " fetch ");
	vps_sh_quote(&cmd, o->url);
	buf_addch(&cmd, ' ');
	vps_sh_quote(&cmd, o->disk);
	buf_adds(&cmd, c == IMG_ZSTD ? " 'zstd -dc'" : c == IMG_XZ ? " 'xz -dc'"
					  : " cat");
	r = vps_ssh_run(s, cmd.ptr, &out, &eout, &status, err);
	if (r < 0)
		goto out;
	if (sscanf(out.ptr, "fail %15s %d", stage, &code) == 2) {
		const char *detail = strchr(out.ptr, '\n');

		r = err_set(err, ERR_FAIL, "the rescue system's %s failed (exit "
			    "%d)%s%.300s: the disk may hold a partial image; run "
			    "apply again to rewrite it",
			    !strcmp(stage, "curl") ? "download (curl)" :
			    !strcmp(stage, "dec") ? "decompression" : "dd", code,
			    detail && detail[1] ? ": " : "", detail ? detail + 1 : "");
		goto out;
	}
	if (status != 0 || sscanf(out.ptr, "ok %llu %64s", &bytes, hash) != 2 ||
	    strlen(hash) != 64 || hex_to_sha(res->sha256, hash) < 0) {
		r = err_set(err, ERR_FAIL, "the rescue system's download script "
			    "failed (exit %d): %.300s%.300s", status, out.ptr,
			    eout.ptr);
		goto out;
	}
	if (o->max_bytes && bytes > o->max_bytes) {
		r = err_set(err, ERR_FAIL, "the image (%llu bytes) is larger than "
			    "disk '%s'", bytes, o->disk);
		goto out;
	}
	res->bytes = bytes;
	if (o->progress)
		o->progress(o->ctx, bytes, 0);
out:
	buf_release(&cmd);
	buf_release(&out);
	buf_release(&eout);
	return r;
}

int
rescue_install_image(struct vps_ssh *s, const struct rescue_facts *f,
		     const struct rescue_write_opts *o,
		     struct rescue_result *res, bool *fetched, struct err *err)
{
	struct rescue_write_opts so = *o;

	*fetched = false;
	if (rescue_can_fetch(f, o)) {
		*fetched = true;
		return rescue_fetch_image(s, o, res, err);
	}
	so.host_decompresses = rescue_host_decompresses(f, o);
	return rescue_write_image(s, &so, res, err);
}
