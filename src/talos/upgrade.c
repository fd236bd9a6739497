#include "talos/upgrade.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talos/factory.h"
#include "talos/gen.h"
#include "util/buf.h"

static int
num(const char **p, int *out)
{
	long v = 0;
	int digits = 0;

	while (**p >= '0' && **p <= '9' && digits < 6) {
		v = v * 10 + (**p - '0');
		(*p)++;
		digits++;
	}
	if (!digits || (**p >= '0' && **p <= '9'))
		return -1;
	*out = (int)v;
	return 0;
}

int
semver_parse(struct semver *v, const char *s)
{
	const char *p = s;

	memset(v, 0, sizeof(*v));
	if (!s)
		return -1;
	if (*p == 'v')
		p++;
	if (num(&p, &v->major) < 0 || *p++ != '.' || num(&p, &v->minor) < 0 ||
	    *p++ != '.' || num(&p, &v->patch) < 0)
		return -1;
	return *p == 0 || *p == '-' || *p == '+' ? 0 : -1;
}

int
semver_cmp(const struct semver *a, const struct semver *b)
{
	if (a->major != b->major)
		return a->major < b->major ? -1 : 1;
	if (a->minor != b->minor)
		return a->minor < b->minor ? -1 : 1;
	if (a->patch != b->patch)
		return a->patch < b->patch ? -1 : 1;
	return 0;
}

int
upgrade_path(const char *what, const char *from, const char *to, char *why,
	     size_t whylen)
{
	struct semver a, b;
	int c;

	if (semver_parse(&a, from) < 0 || semver_parse(&b, to) < 0) {
		snprintf(why, whylen, "%s version '%s' -> '%s': not a version "
			 "(want vMAJOR.MINOR.PATCH)", what, from ? from : "?",
			 to ? to : "?");
		return -1;
	}
	c = semver_cmp(&a, &b);
	if (c == 0)
		return 0;
	if (c > 0) {
		snprintf(why, whylen, "%s %s -> %s is a downgrade, which strata "
			 "does not roll; set the version back to %s", what, from,
			 to, from);
		return -1;
	}
	if (a.major != b.major || b.minor > a.minor + 1) {
		snprintf(why, whylen, "%s %s -> %s skips a minor version: only "
			 "adjacent minors are a supported upgrade path; go to "
			 "%d.%d first (its latest patch), apply, then on",
			 what, from, to, a.major, a.minor + 1);
		return -1;
	}
	return 1;
}

char *
upgrade_installer(const struct config *cfg, struct err *err)
{
	char id[65];

	if (cfg->talos.installer_image)
		return xstrdup(cfg->talos.installer_image);
	if (talos_schematic_for(id, cfg, err) < 0)
		return NULL;
	return talos_factory_installer(id, cfg->talos.version, "metal");
}
