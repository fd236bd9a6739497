#include "util/out.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

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

static void
vout(const char *label, const char *ansi, const char *fmt, va_list ap)
{
	if (out_color())
		fprintf(stderr, "\033[%sm%s\033[0m", ansi, label);
	else
		fputs(label, stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

void
out_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout("error: ", "1;31", fmt, ap);
	va_end(ap);
}

void
out_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout("warning: ", "1;35", fmt, ap);
	va_end(ap);
}

void
out_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout("note: ", "1;36", fmt, ap);
	va_end(ap);
}

void
out_step(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vout("==> ", "1;34", fmt, ap);
	va_end(ap);
}
