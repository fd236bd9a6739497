#include "util/out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/buf.h"
#include "util/event.h"

static int color = -1;

void
out_init(void)
{
	const char *nc = getenv("NO_COLOR");

	color = isatty(STDERR_FILENO) && !(nc && *nc);
}

bool
out_color(void)
{
	if (color < 0)
		out_init();
	return color;
}

/*
 * A Proxmox task id "UPID:pve1:0003A1F2:01B2C3D4:66A0B1C2:qmcreate:100:
 * root@pam!ci:" at p: append "qmcreate 100 on pve1" and return the
 * length consumed, or 0 when p is not one.
 */
static size_t
upid(struct buf *b, const char *p)
{
	const char *f[8], *q = p + 5;
	size_t len[8], i;

	if (strncmp(p, "UPID:", 5))
		return 0;
	for (i = 0; i < 7; i++) {
		const char *c = strchr(q, ':');

		if (!c || c - q > 64 || memchr(q, ' ', (size_t)(c - q)))
			return 0;
		f[i] = q;
		len[i] = (size_t)(c - q);
		q = c + 1;
	}
	if (!len[0] || !len[4])
		return 0;
	buf_add(b, f[4], len[4]);
	if (len[5]) {
		buf_addch(b, ' ');
		buf_add(b, f[5], len[5]);
	}
	buf_adds(b, " on ");
	buf_add(b, f[0], len[0]);
	return (size_t)(q - p);
}

char *
out_clean(const char *s)
{
	struct buf b = BUF_INIT;
	const unsigned char *p;
	size_t n;

	if (!s)
		return NULL;
	for (p = (const unsigned char *)s; *p; p++) {
		size_t seq = *p >= 0xc2 && *p <= 0xdf ? 2 : *p >= 0xe0 && *p <= 0xef
			     ? 3 : *p >= 0xf0 && *p <= 0xf4 ? 4 : 1, k;

		if (*p == 'U' && (n = upid(&b, (const char *)p)) > 0) {
			p += n - 1;
		} else if ((*p < 0x20 && *p != '\n' && *p != '\t') || *p == 0x7f) {
			buf_addf(&b, "\\x%02x", *p);
		} else if (*p < 0x80) {
			buf_addch(&b, (char)*p);
		} else {
			/* a whole UTF-8 sequence, else the byte escaped (a lone
			 * 0x9b is CSI on an 8-bit terminal) */
			for (k = 1; k < seq && (p[k] & 0xc0) == 0x80; k++)
				;
			if (seq == 1 || k < seq)
				buf_addf(&b, "\\x%02x", *p);
			else if (*p == 0xc2 && p[1] <= 0x9f)
				buf_addf(&b, "\\x%02x", *++p);   /* C1 control */
			else {
				buf_add(&b, p, seq);
				p += seq - 1;
			}
		}
	}
	return buf_detach(&b, NULL);
}

enum kind { K_ERROR, K_WARN, K_NOTE, K_STEP };

static void
vout(enum kind k, const char *fmt, va_list ap)
{
	static const char *const label[] = { "error: ", "warning: ", "note: ", "==> " };
	static const char *const ansi[] = { "1;31", "1;35", "1;36", "1;34" };
	struct buf b = BUF_INIT;
	char *msg;

	buf_vaddf(&b, fmt, ap);
	msg = out_clean(b.ptr);
	buf_release(&b);
	if (out_color())
		fprintf(stderr, "\033[%sm%s\033[0m%s\n", ansi[k], label[k], msg);
	else
		fprintf(stderr, "%s%s\n", label[k], msg);
	if (k == K_ERROR)
		event_error(msg);
	else if (k == K_WARN)
		event_warning(msg);
	else
		event_note(msg);
	free(msg);
}

#define OUT_FN(fn, k)                          \
	void fn(const char *fmt, ...)          \
	{                                      \
		va_list ap;                    \
		va_start(ap, fmt);             \
		vout(k, fmt, ap);              \
		va_end(ap);                    \
	}

OUT_FN(out_error, K_ERROR)
OUT_FN(out_warn, K_WARN)
OUT_FN(out_note, K_NOTE)
OUT_FN(out_step, K_STEP)
