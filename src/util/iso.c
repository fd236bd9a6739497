/*
 * iso: ISO9660 images in memory, on libisofs (see iso.h).
 */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/types.h>

/* libisofs.h declares a few functions as f() (no prototype). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <libisofs.h>
#pragma GCC diagnostic pop

#include <openssl/crypto.h>

#include "util/iso.h"

/* 2000-01-01T00:00:00Z, and the same as ECMA-119 text YYYYMMDDhhmmsscc. */
#define ISO_FIXED_TIME ((time_t)946684800)
#define ISO_FIXED_PVD "2000010100000000"

/* fs id of our streams: any value not used by libisofs's own (1..7). */
#define STRATA_ISO_FS_ID 0x5354

static pthread_once_t iso_once = PTHREAD_ONCE_INIT;
static int iso_init_rc;

static void
iso_global_init(void)
{
	iso_init_rc = iso_init();
	/* Errors come back as codes; nothing printed on our stderr. */
	if (iso_init_rc >= 0)
		iso_set_msgs_severities("NEVER", "NEVER", "");
}

/* ---- a read-only stream over borrowed memory */

struct mem_src {
	const unsigned char *p;
	size_t len, pos;
	ino_t ino;
};

static int
ms_open(IsoStream *s)
{
	((struct mem_src *)s->data)->pos = 0;
	return 1;
}

static int
ms_close(IsoStream *s)
{
	return 1;
}

static off_t
ms_get_size(IsoStream *s)
{
	return (off_t)((struct mem_src *)s->data)->len;
}

static int
ms_read(IsoStream *s, void *buf, size_t count)
{
	struct mem_src *m = s->data;
	size_t n = m->len - m->pos;

	if (n > count)
		n = count;
	memcpy(buf, m->p + m->pos, n);
	m->pos += n;
	return (int)n;
}

static int
ms_is_repeatable(IsoStream *s)
{
	return 1;
}

static void
ms_get_id(IsoStream *s, unsigned int *fs_id, dev_t *dev_id, ino_t *ino_id)
{
	*fs_id = STRATA_ISO_FS_ID;
	*dev_id = 0;
	*ino_id = ((struct mem_src *)s->data)->ino;
}

static void
ms_free(IsoStream *s)
{
	free(s->data);
}

static int
ms_update_size(IsoStream *s)
{
	return 1;
}

static IsoStreamIface mem_class = {
	1, "user", ms_open, ms_close, ms_get_size, ms_read, ms_is_repeatable,
	ms_get_id, ms_free, ms_update_size, NULL, NULL, NULL,
};

static IsoStream *
mem_stream(const void *data, size_t len, ino_t ino)
{
	IsoStream *s = xcalloc(1, sizeof(*s));
	struct mem_src *m = xcalloc(1, sizeof(*m));

	m->p = data;
	m->len = len;
	m->ino = ino;
	s->class = &mem_class;
	s->refcount = 1;
	s->data = m;
	return s;
}

/* ---- the image */

static bool
volid_ok(const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n > 32)
		return false;
	return strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789_-") == n;
}

static int
iso_fail(struct err *err, const char *what, int code)
{
	return err_set(err, ERR_FAIL, "build ISO image: %s: %s", what,
		       iso_error_to_msg(code));
}

/* Add the files to the image's root. */
static int
add_files(IsoImage *img, const struct iso_file *files, size_t n,
	  struct err *err)
{
	IsoDir *root = iso_image_get_root(img);
	size_t i;
	int r;

	for (i = 0; i < n; i++) {
		IsoStream *s = mem_stream(files[i].data, files[i].len, i + 1);
		IsoFile *f = NULL;

		/* The new file takes our reference to the stream. */
		if ((r = iso_tree_add_new_file(root, files[i].name, s, &f)) < 0) {
			iso_stream_unref(s);
			return iso_fail(err, files[i].name, r);
		}
	}
	return 0;
}

/* Read the whole image out of the writer thread. */
static int
collect(struct buf *out, struct burn_source *bs, struct err *err)
{
	unsigned char block[2048];
	int got;

	while ((got = bs->read_xt(bs, block, sizeof(block))) > 0)
		buf_add(out, block, (size_t)got);
	OPENSSL_cleanse(block, sizeof(block));
	if (got < 0)
		return err_set(err, ERR_FAIL, "build ISO image: the writer failed");
	return 0;
}

int
iso_build(struct buf *out, const char *volid, const struct iso_file *files,
	  size_t n, struct err *err)
{
	IsoImage *img = NULL;
	IsoWriteOpts *opts = NULL;
	struct burn_source *bs = NULL;
	int r;

	if (!volid_ok(volid))
		return err_set(err, ERR_FAIL, "build ISO image: volume id '%s' "
			       "is not 1 to 32 of [A-Za-z0-9_-]", volid);
	pthread_once(&iso_once, iso_global_init);
	if (iso_init_rc < 0)
		return iso_fail(err, "init", iso_init_rc);
	if ((r = iso_image_new(volid, &img)) < 0)
		return iso_fail(err, "new image", r);
	if ((r = add_files(img, files, n, err)) < 0)
		goto out;
	if ((r = iso_write_opts_new(&opts, 0)) < 0) {
		r = iso_fail(err, "options", r);
		goto out;
	}
	/* Names as given (Rock Ridge, Joliet); the volume id as given, not
	 * upper-cased: Talos and cloud-init look for "cidata". */
	iso_write_opts_set_rockridge(opts, 1);
	iso_write_opts_set_joliet(opts, 1);
	iso_write_opts_set_omit_version_numbers(opts, 2);  /* Joliet: no ";1" */
	iso_write_opts_set_no_force_dots(opts, 2);         /* nor a trailing "." */
	iso_write_opts_set_relaxed_vol_atts(opts, 1);
	iso_write_opts_set_always_gmt(opts, 1);
	iso_write_opts_set_fifo_size(opts, 32);
	/* The same files make the same bytes: every timestamp (volume, Rock
	 * Ridge, directory records of all three trees) fixed, so an unchanged
	 * seed is seen as unchanged and never uploaded or rewritten again. */
	iso_write_opts_set_dir_rec_mtime(opts, 7);
	iso_write_opts_set_replace_timestamps(opts, 2);
	iso_write_opts_set_default_timestamp(opts, ISO_FIXED_TIME);
	iso_write_opts_set_pvd_times(opts, ISO_FIXED_TIME, ISO_FIXED_TIME, 0,
				     ISO_FIXED_TIME, (char *)ISO_FIXED_PVD);
	if ((r = iso_image_create_burn_source(img, opts, &bs)) < 0) {
		r = iso_fail(err, "writer", r);
		goto out;
	}
	r = collect(out, bs, err);
	if (r < 0)
		bs->cancel(bs);
	bs->free_data(bs);
	free(bs);
out:
	iso_write_opts_free(opts);
	iso_image_unref(img);
	return r < 0 ? -1 : 0;
}
