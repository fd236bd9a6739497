/*
 * The removed-API check of a Kubernetes upgrade (removed.h). The table is
 * ours, written from the Kubernetes "Deprecated API Migration Guide"
 * (kubernetes.io/docs/reference/using-api/deprecation-guide/): for each
 * release from v1.25, the beta group/versions it stops serving and what to
 * migrate to. Releases before 1.25 are left out: no Talos version strata
 * generates configs for runs them (Kubernetes 1.30 and later). Nothing
 * past v1.32 is in the table: add a release's entries when the guide lists
 * removals for it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kube/kubeapi.h"
#include "kube/removed.h"
#include "util/out.h"

#define FLOWCONTROL "flowcontrol.apiserver.k8s.io/"

static const struct kube_removed table[] = {
	/* v1.25 */
	{ 25, "batch/v1beta1", "CronJob", "batch/v1", NULL },
	{ 25, "discovery.k8s.io/v1beta1", "EndpointSlice", "discovery.k8s.io/v1",
	  NULL },
	{ 25, "events.k8s.io/v1beta1", "Event", "events.k8s.io/v1", NULL },
	{ 25, "autoscaling/v2beta1", "HorizontalPodAutoscaler", "autoscaling/v2",
	  NULL },
	{ 25, "policy/v1beta1", "PodDisruptionBudget", "policy/v1", NULL },
	{ 25, "policy/v1beta1", "PodSecurityPolicy", NULL,
	  "PodSecurityPolicy is gone from Kubernetes (use Pod Security "
	  "Admission, which Talos configures): delete them" },
	{ 25, "node.k8s.io/v1beta1", "RuntimeClass", "node.k8s.io/v1", NULL },
	/* v1.26 */
	{ 26, FLOWCONTROL "v1beta1", "FlowSchema", FLOWCONTROL "v1beta3", NULL },
	{ 26, FLOWCONTROL "v1beta1", "PriorityLevelConfiguration",
	  FLOWCONTROL "v1beta3", NULL },
	{ 26, "autoscaling/v2beta2", "HorizontalPodAutoscaler", "autoscaling/v2",
	  NULL },
	/* v1.27 */
	{ 27, "storage.k8s.io/v1beta1", "CSIStorageCapacity", "storage.k8s.io/v1",
	  NULL },
	/* v1.29 */
	{ 29, FLOWCONTROL "v1beta2", "FlowSchema", FLOWCONTROL "v1", NULL },
	{ 29, FLOWCONTROL "v1beta2", "PriorityLevelConfiguration",
	  FLOWCONTROL "v1", NULL },
	/* v1.32 */
	{ 32, FLOWCONTROL "v1beta3", "FlowSchema", FLOWCONTROL "v1", NULL },
	{ 32, FLOWCONTROL "v1beta3", "PriorityLevelConfiguration",
	  FLOWCONTROL "v1", NULL },
};

size_t
kube_removed_between(int from_minor, int to_minor,
		     const struct kube_removed **out, size_t max)
{
	size_t i, k = 0;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		if (table[i].removed_in <= from_minor || table[i].removed_in > to_minor)
			continue;
		if (k < max && out)
			out[k] = &table[i];
		k++;
	}
	return k;
}

bool
kube_removed_uses(const struct kube_removed *rm, json_t *item, const char **who)
{
	json_t *md = json_object_get(item, "metadata"), *mf, *e;
	const char *last;
	size_t i;

	if (who)
		*who = NULL;
	if (!rm->replacement)
		return true;
	mf = json_object_get(md, "managedFields");
	json_array_foreach(mf, i, e) {
		const char *av = json_string_value(json_object_get(e, "apiVersion"));

		if (av && !strcmp(av, rm->group_version)) {
			if (who)
				*who = json_string_value(json_object_get(e, "manager"));
			return true;
		}
	}
	last = json_string_value(json_object_get(json_object_get(md, "annotations"),
		"kubectl.kubernetes.io/last-applied-configuration"));
	if (last) {
		json_t *doc = json_loads(last, 0, NULL);
		const char *av = json_string_value(json_object_get(doc, "apiVersion"));
		bool old = av && !strcmp(av, rm->group_version);

		json_decref(doc);
		if (old) {
			if (who)
				*who = "kubectl apply";
			return true;
		}
	}
	return false;
}

/* The minor of "1.N.P" (a leading v optional), or -1. */
static int
minor_of(const char *v)
{
	char *end;
	long m;

	if (!v)
		return -1;
	if (*v == 'v')
		v++;
	if (strncmp(v, "1.", 2))
		return -1;
	m = strtol(v + 2, &end, 10);
	return end == v + 2 || m < 0 || m > 1000 ? -1 : (int)m;
}

#define SHOW_MAX 3      /* named in the error */
#define WARN_MAX 50     /* one warning line each */

struct found {
	char text[SHOW_MAX][200];
	const struct kube_removed *apis[16];
	size_t n, n_apis;
};

static void
note(struct found *f, const struct kube_removed *rm, json_t *item,
     const char *who)
{
	json_t *md = json_object_get(item, "metadata");
	const char *ns = json_string_value(json_object_get(md, "namespace"));
	const char *name = json_string_value(json_object_get(md, "name"));
	char text[sizeof(f->text[0])];
	size_t i;

	snprintf(text, sizeof(text), "%s %s%s%s (%s%s%s)", rm->kind, ns ? ns : "",
		 ns ? "/" : "", name ? name : "?", rm->group_version,
		 who ? ", written by " : "", who ? who : "");
	if (f->n < SHOW_MAX)
		memcpy(f->text[f->n], text, sizeof(text));
	if (f->n < WARN_MAX)
		out_warn("uses an API the new Kubernetes no longer serves: %s", text);
	f->n++;
	for (i = 0; i < f->n_apis; i++)
		if (f->apis[i] == rm)
			return;
	if (f->n_apis < sizeof(f->apis) / sizeof(f->apis[0]))
		f->apis[f->n_apis++] = rm;
}

static int
refuse(const struct found *f, const char *from, const char *to, int to_minor,
       struct err *err)
{
	char msg[sizeof(err->msg)];
	size_t i, len = 0;

#define ADD(...) do { \
		int w_ = snprintf(msg + len, sizeof(msg) - len, __VA_ARGS__); \
		if (w_ > 0) \
			len = len + (size_t)w_ < sizeof(msg) ? len + (size_t)w_ \
							     : sizeof(msg) - 1; \
	} while (0)
	ADD("Kubernetes %s -> %s: %zu object%s use%s an API that 1.%d no longer "
	    "serves: ", from, to, f->n, f->n == 1 ? "" : "s", f->n == 1 ? "s" : "",
	    to_minor);
	for (i = 0; i < f->n && i < SHOW_MAX; i++)
		ADD("%s%s", i ? ", " : "", f->text[i]);
	if (f->n > SHOW_MAX)
		ADD(" and %zu more (listed above)", f->n - SHOW_MAX);
	ADD(". ");
	for (i = 0; i < f->n_apis; i++) {
		const struct kube_removed *rm = f->apis[i];
		size_t j;
		bool seen = false;

		if (!rm->replacement) {
			ADD("%s %s: %s. ", rm->group_version, rm->kind, rm->what_to_do);
			continue;
		}
		/* one instruction per group/version and replacement */
		for (j = 0; j < i && !seen; j++)
			seen = f->apis[j]->replacement &&
			       !strcmp(f->apis[j]->group_version, rm->group_version) &&
			       !strcmp(f->apis[j]->replacement, rm->replacement);
		if (seen)
			continue;
		ADD("%s %s", rm->group_version, rm->kind);
		for (j = i + 1; j < f->n_apis; j++)
			if (f->apis[j]->replacement &&
			    !strcmp(f->apis[j]->group_version, rm->group_version) &&
			    !strcmp(f->apis[j]->replacement, rm->replacement))
				ADD(", %s", f->apis[j]->kind);
		ADD(": migrate to %s (set that apiVersion in the manifest or "
		    "chart and apply it again with the same field manager, or "
		    "delete the object). ", rm->replacement);
	}
	ADD("Then run apply again; the upgrade did not start, nothing was "
	    "changed");
#undef ADD
	return err_set(err, ERR_USAGE, "%s", msg);
}

int
kube_removed_check(struct kube_client *kc, const char *from, const char *to,
		   struct err *err)
{
	const struct kube_removed *rm[32];
	struct found *f;
	int fm = minor_of(from), tm = minor_of(to), r = 0;
	size_t n, i, j;

	if (fm < 0 || tm < 0 || tm <= fm)
		return 0;
	n = kube_removed_between(fm, tm, rm, sizeof(rm) / sizeof(rm[0]));
	if (n > sizeof(rm) / sizeof(rm[0]))
		n = sizeof(rm) / sizeof(rm[0]);
	if (!n)
		return 0;
	f = calloc(1, sizeof(*f));
	if (!f)
		return err_set(err, ERR_FAIL, "out of memory");
	for (i = 0; i < n && r == 0; i++) {
		json_t *items = NULL, *o;

		if (kube_list(kc, rm[i]->group_version, rm[i]->kind, NULL, NULL,
			      &items, err) < 0) {
			if (err->code == ERR_NOTFOUND) {
				/* not served (any more): nothing can use it */
				err_clear(err);
				continue;
			}
			r = err_wrap(err, "removed-API check for Kubernetes %s (%s "
				     "%s)", to, rm[i]->group_version, rm[i]->kind);
			break;
		}
		json_array_foreach(items, j, o) {
			const char *who;

			if (kube_removed_uses(rm[i], o, &who))
				note(f, rm[i], o, who);
		}
		json_decref(items);
	}
	if (f->n > WARN_MAX)
		out_warn("... and %zu more objects using removed APIs",
			 f->n - WARN_MAX);
	if (r == 0 && f->n)
		r = refuse(f, from, to, tm, err);
	free(f);
	return r;
}
