/*
 * bench/vps_stream: one rescue write through strata's own path (connect,
 * probe, checks, libcurl download, decompression, SSH stream into dd),
 * timed, then the read-back timed apart. Used by bench/vps.sh.
 *   vps_stream URL DISK HOST PORT KEY FINGERPRINT [strata-decompresses]
 * A compressed image is decompressed where apply would: by the host when
 * it has the decompressor (the compressed bytes cross the channel), else
 * by strata; strata-decompresses forces the latter (a host without zstd).
 * Prints "bytes=N setup_s=S write_s=S verify_s=S MBps=R cipher=C
 * decompress=host|strata|none":
 * setup_s is the SSH connection and the probe, write_s runs from the
 * stream's channel open to dd's exit after its fsync (bench/vps.sh times
 * plain ssh over a connection made before, likewise), MB/s is of the write.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "provider/vps/rescue.h"
#include "provider/vps/ssh.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int
main(int argc, char **argv)
{
	struct vps_ssh_opts o = { 0 };
	struct rescue_write_opts wo = { 0 };
	struct rescue_facts f;
	struct rescue_result res;
	struct vps_ssh *s;
	struct err err = ERR_INIT;
	double t0, tc, t1, t2;

	if (argc != 7 && !(argc == 8 && !strcmp(argv[7], "strata-decompresses"))) {
		fprintf(stderr, "usage: vps_stream URL DISK HOST PORT KEY FP "
			"[strata-decompresses]\n");
		return 2;
	}
	o.host = argv[3];
	o.port = atoi(argv[4]);
	o.user = "root";
	o.key_file = argv[5];
	o.host_fingerprint = argv[6];
	t0 = now();
	if (vps_ssh_connect(&s, &o, &err) < 0 ||
	    rescue_probe(s, argv[2], &f, &err) < 0 ||
	    rescue_check_target(&f, argv[2], 1, false, &err) < 0) {
		fprintf(stderr, "vps_stream: %s\n", err.msg);
		return 1;
	}
	tc = now();
	wo.url = argv[1];
	wo.disk = argv[2];
	wo.max_bytes = f.size;
	wo.host_decompresses = argc == 7 && rescue_host_decompresses(&f, &wo);
	if (rescue_write_image(s, &wo, &res, &err) < 0) {
		fprintf(stderr, "vps_stream: %s\n", err.msg);
		return 1;
	}
	t1 = now();
	if (rescue_verify(s, argv[2], &res, &err) < 0) {
		fprintf(stderr, "vps_stream: %s\n", err.msg);
		return 1;
	}
	t2 = now();
	printf("bytes=%llu setup_s=%.3f write_s=%.3f verify_s=%.3f MBps=%.1f "
	       "cipher=%s decompress=%s\n", (unsigned long long)res.bytes,
	       tc - t0, t1 - tc, t2 - t1, (double)res.bytes / 1e6 / (t1 - tc),
	       vps_ssh_cipher(s), rescue_compression_of(wo.url) == IMG_RAW ? "none"
	       : wo.host_decompresses ? "host" : "strata");
	vps_ssh_close(s);
	return 0;
}
