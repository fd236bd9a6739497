#include "kube/kubeconfig.h"

#include "util/isolate.h"
#include "util/yaml.h"

#include <libfyaml.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int
kube_gunzip(struct buf *out, const void *gz, size_t len, size_t max,
	    struct err *err)
{
	unsigned char chunk[16384];
	z_stream zs;
	int zr;

	memset(&zs, 0, sizeof(zs));
	/* 16 + MAX_WBITS: expect a gzip header. */
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)
		return err_set(err, ERR_FAIL, "cannot start zlib");
	zs.next_in = (Bytef *)gz;
	zs.avail_in = (uInt)len;
	do {
		zs.next_out = chunk;
		zs.avail_out = sizeof(chunk);
		zr = inflate(&zs, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			inflateEnd(&zs);
			return err_set(err, ERR_FAIL, "not valid gzip data (%s)",
				       zs.msg ? zs.msg : "inflate failed");
		}
		buf_add(out, chunk, sizeof(chunk) - zs.avail_out);
		if (out->len > max) {
			inflateEnd(&zs);
			return err_set(err, ERR_FAIL, "archive inflates past %zu bytes",
				       max);
		}
	} while (zr != Z_STREAM_END && (zs.avail_in > 0 || zs.avail_out == 0));
	inflateEnd(&zs);
	if (zr != Z_STREAM_END)
		return err_set(err, ERR_FAIL, "gzip data is truncated");
	return 0;
}

static size_t
octal(const char *s, size_t n)
{
	size_t v = 0, i;

	for (i = 0; i < n && s[i] >= '0' && s[i] <= '7'; i++)
		v = v * 8 + (size_t)(s[i] - '0');
	return v;
}

int
kube_tar_find(const void *tar, size_t len, const char *name,
	      const void **data, size_t *size, struct err *err)
{
	const char *p = tar;
	size_t off = 0;

	while (off + 512 <= len) {
		const char *h = p + off;
		char fname[257];
		size_t fsize;
		char type = h[156];

		if (h[0] == '\0')
			break; /* end-of-archive blocks */
		if (memcmp(h + 257, "ustar", 5) != 0)
			return err_set(err, ERR_FAIL, "not a tar archive");
		/* ustar prefix (155 bytes at 345) + name (100 bytes) */
		if (h[345])
			snprintf(fname, sizeof(fname), "%.155s/%.100s", h + 345, h);
		else
			snprintf(fname, sizeof(fname), "%.100s", h);
		fsize = octal(h + 124, 12);
		if (off + 512 + fsize > len)
			return err_set(err, ERR_FAIL, "tar entry '%s' is truncated",
				       fname);
		if ((type == '0' || type == '\0') &&
		    (!strcmp(fname, name) ||
		     (!strncmp(fname, "./", 2) && !strcmp(fname + 2, name)))) {
			*data = h + 512;
			*size = fsize;
			return 0;
		}
		off += 512 + (fsize + 511) / 512 * 512;
	}
	err_set(err, ERR_NOTFOUND, "no '%s' in the archive", name);
	return -ERR_NOTFOUND;
}

static int
set_server_here(struct buf *out, const char *yaml, size_t len,
		const char *server, struct err *err)
{
	struct fy_document *doc;
	struct fy_node *clusters, *item;
	void *it = NULL;
	char *text;
	size_t n = 0;
	doc = yaml_parse(yaml, len, err);
	if (!doc)
		return err_wrap(err, "kubeconfig is not valid YAML");
	clusters = fy_node_by_path(fy_document_root(doc), "/clusters", FY_NT,
				   FYNWF_DONT_FOLLOW);
	if (!clusters || fy_node_get_type(clusters) != FYNT_SEQUENCE) {
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "kubeconfig has no clusters list");
	}
	while ((item = fy_node_sequence_iterate(clusters, &it))) {
		struct fy_node *cl = fy_node_by_path(item, "/cluster", FY_NT,
						     FYNWF_DONT_FOLLOW);

		if (!cl || fy_node_get_type(cl) != FYNT_MAPPING)
			continue;
		struct fy_node_pair *pr = fy_node_mapping_lookup_pair_by_string(
			cl, "server", FY_NT);
		struct fy_node *val = fy_node_create_scalar_copy(doc, server, FY_NT);

		if (pr ? fy_node_pair_set_value(pr, val) < 0
		       : fy_node_mapping_append(cl, fy_node_build_from_string(
							    doc, "server", FY_NT),
						val) < 0) {
			fy_document_destroy(doc);
			return err_set(err, ERR_FAIL, "cannot set the kubeconfig server");
		}
		n++;
	}
	if (!n) {
		fy_document_destroy(doc);
		return err_set(err, ERR_FAIL, "kubeconfig has no cluster entries");
	}
	text = fy_emit_document_to_string(doc, FYECF_MODE_BLOCK | FYECF_INDENT_2 |
						       FYECF_WIDTH_INF);
	fy_document_destroy(doc);
	if (!text)
		return err_set(err, ERR_FAIL, "cannot write the kubeconfig");
	buf_adds(out, text);
	free(text);
	return 0;
}

/* The input: the server, then the kubeconfig (isolate_put_*). */
static int
set_server_child(void *ctx, struct buf *out, struct err *err)
{
	struct buf yaml = BUF_INIT_SECRET;
	struct isolate_reader rd;
	char *server;
	int r;

	isolate_reader_init(&rd, ctx);
	server = isolate_get_str(&rd);
	isolate_get_mem(&rd, &yaml);
	if (rd.bad || !server)
		r = err_set(err, ERR_FAIL, "kubeconfig: malformed input");
	else
		r = set_server_here(out, yaml.ptr, yaml.len, server, err);
	free(server);
	buf_release_secret(&yaml);
	return r;
}
ISOLATE_OP(set_server_child);

/* In a fresh process (isolate_spawn): the kubeconfig holds the admin
 * client key, and libfyaml frees its copies unwiped. */
int
kubeconfig_set_server(struct buf *out, const char *yaml, size_t len,
		      const char *server, struct err *err)
{
	struct buf in = BUF_INIT_SECRET;
	int r;

	isolate_put_str(&in, server);
	isolate_put_mem(&in, yaml, len);
	r = isolate_spawn(set_server_child, in.ptr, in.len, out, err);
	buf_release_secret(&in);
	return r;
}

int
kubeconfig_from_targz(struct buf *out, const void *targz, size_t len,
		      const char *server, struct err *err)
{
	struct buf tar = BUF_INIT;
	const void *data;
	size_t size;
	int r;

	if ((r = kube_gunzip(&tar, targz, len, 16u << 20, err)) < 0 ||
	    (r = kube_tar_find(tar.ptr, tar.len, "kubeconfig", &data, &size, err)) < 0)
		goto out;
	r = server ? kubeconfig_set_server(out, data, size, server, err)
		   : (buf_add(out, data, size), 0);
out:
	buf_release_secret(&tar);
	if (r < 0)
		err_wrap(err, "kubeconfig from Talos");
	return r;
}
