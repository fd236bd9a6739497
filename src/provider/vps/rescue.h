/*
 * vps/rescue: writing the Talos metal image to a server's disk from its
 * rescue system (../shared/reference/talos/FACTS-metal.md §1-2).
 *
 *	rescue_probe      one SSH round trip: the tools the host has and what
 *	                  the target disk is (block device or file, partition,
 *	                  mounted, md/dm holders, size)
 *	rescue_check_target  refuse a missing disk, a partition, a mounted disk,
 *	                  one held by RAID/device-mapper (unless told to stop
 *	                  md RAID), a disk smaller than the image
 *	rescue_write_image  the image downloaded by libcurl, decompressed with
 *	                  libzstd or liblzma by its suffix, hashed (SHA-256)
 *	                  and streamed into `dd of=DISK conv=fsync` over SSH
 *	rescue_verify     the host hashes the disk's first N bytes; they must
 *	                  equal what was sent
 *
 * Nothing here reboots the host or decides whether the disk already holds
 * this cluster's Talos: that is the phase's job.
 */
#ifndef STRATA_PROVIDER_VPS_RESCUE_H
#define STRATA_PROVIDER_VPS_RESCUE_H

#include <stdbool.h>
#include <stdint.h>

#include "provider/vps/ssh.h"
#include "util/err.h"

/* The metal profile's raw disk size (FACTS-metal.md §1, MinRAWDiskSize). */
#define RESCUE_METAL_RAW_BYTES 1306525696ULL

enum rescue_disk_kind { DISK_MISSING = 0, DISK_BLOCK, DISK_FILE, DISK_OTHER };

struct rescue_facts {
	bool has_curl, has_wget, has_zstd, has_xz, has_dd, has_sha256sum,
	     has_head, has_mdadm;
	enum rescue_disk_kind kind;
	bool partition;            /* a partition, not a whole disk */
	bool mounted;              /* it or one of its partitions is mounted */
	char holders[256];         /* md/dm devices built on it, space-separated */
	uint64_t size;             /* bytes */
};

enum rescue_compression { IMG_RAW = 0, IMG_ZSTD, IMG_XZ };

/* Compression from the URL's suffix (.zst, .xz, else raw). */
enum rescue_compression rescue_compression_of(const char *url);

/* Parse the probe script's output (exposed for unit tests). */
void rescue_parse_probe(struct rescue_facts *f, const char *text);

int rescue_probe(struct vps_ssh *s, const char *disk, struct rescue_facts *f,
		 struct err *err);

/*
 * Whether the image may be written to disk. stop_raid: md arrays built on
 * the disk may be stopped (vps.stop_raid in the config); the caller runs
 * rescue_stop_raid then. Errors name the disk and what to do.
 */
int rescue_check_target(const struct rescue_facts *f, const char *disk,
			uint64_t image_bytes, bool stop_raid, struct err *err);
int rescue_stop_raid(struct vps_ssh *s, const struct rescue_facts *f,
		     struct err *err);

struct rescue_write_opts {
	const char *url;           /* http(s) URL of the image */
	const char *ca_file;       /* CA bundle for the download, or NULL */
	const char *disk;
	uint64_t max_bytes;        /* the disk's size: never write past it */
	/* rescue_write_image: the host has the image's decompressor
	 * (rescue_host_decompresses): the compressed bytes cross the SSH
	 * channel and the host decompresses them into dd; strata still
	 * decompresses its copy, to count and hash the image. */
	bool host_decompresses;
	/* Called about every 64 MiB and at the end (may be NULL). */
	void (*progress)(void *ctx, uint64_t written, uint64_t download_total);
	void *ctx;
};

struct rescue_result {
	uint64_t bytes;            /* raw bytes written */
	unsigned char sha256[32];  /* of those bytes */
};

int rescue_write_image(struct vps_ssh *s, const struct rescue_write_opts *o,
		       struct rescue_result *res, struct err *err);

/*
 * The rescue host downloads and decompresses the image itself (curl, and
 * zstd or xz for a compressed image), hashing what it writes; every stage's
 * exit status is checked, so a cut download is an error, not a short disk.
 * Used when rescue_can_fetch says the host has the tools (and no private
 * CA file is needed); res is filled from the host's own count and hash.
 */
bool rescue_can_fetch(const struct rescue_facts *f, const struct rescue_write_opts *o);
int rescue_fetch_image(struct vps_ssh *s, const struct rescue_write_opts *o,
		       struct rescue_result *res, struct err *err);

/* The host has the decompressor for o->url's suffix (false for a raw image). */
bool rescue_host_decompresses(const struct rescue_facts *f,
			      const struct rescue_write_opts *o);

/* The fastest path the host allows: fetch on the host, else stream (the
 * compressed image when the host can decompress it). */
int rescue_install_image(struct vps_ssh *s, const struct rescue_facts *f,
			 const struct rescue_write_opts *o,
			 struct rescue_result *res, bool *fetched,
			 struct err *err);
int rescue_verify(struct vps_ssh *s, const char *disk,
		  const struct rescue_result *res, struct err *err);

#endif
