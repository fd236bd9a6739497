/*
 * talos/upgrade: the supported paths (FACTS-day2 4a, 4b) and the machine
 * config of each step of a Kubernetes roll (the images after the step
 * still at the old version, a pinned image left alone, every other field
 * kept).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "talos/upgrade.h"
#include "util/buf.h"

static void
test_paths(void **state)
{
	char why[400];

	(void)state;
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.35.4", why, sizeof(why)), 0);
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.35.5", why, sizeof(why)), 1);
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.36.0", why, sizeof(why)), 1);
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.37.0", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "skips a minor version"));
	assert_non_null(strstr(why, "go to 1.36 first"));
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.35.3", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is a downgrade"));
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.34.9", why, sizeof(why)), -1);
	assert_int_equal(upgrade_path("Talos", "v1.12.11", "v1.13.0", why, sizeof(why)), 1);
	assert_int_equal(upgrade_path("Kubernetes", "1.35", "1.36.0", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "not a version"));
}

/* Every unsupported path FACTS-day2 names is refused, saying what to do. */
static void
test_paths_unsupported(void **state)
{
	char why[400];

	(void)state;
	/* Talos: adjacent minors only, never back, never another major */
	assert_int_equal(upgrade_path("Talos", "v1.12.11", "v1.14.0", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "skips a minor version"));
	assert_non_null(strstr(why, "go to 1.13 first"));
	assert_int_equal(upgrade_path("Talos", "v1.13.9", "v1.12.11", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is a downgrade"));
	assert_int_equal(upgrade_path("Talos", "v1.12.11", "v2.0.0", why, sizeof(why)), -1);
	assert_int_equal(upgrade_path("Talos", "v1.12.10", "v1.12.9", why, sizeof(why)), -1);
	/* Talos: a minor upgrade from the latest patch of the current minor */
	assert_int_equal(upgrade_path("Talos", "v1.12.10", "v1.13.9", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "leaves v1.12 before its latest patch"));
	assert_non_null(strstr(why, "set talos.version to v1.12.11, apply, then v1.13.9"));
	assert_int_equal(upgrade_path("Talos", "v1.12.10", "v1.12.11", why, sizeof(why)), 1);
	assert_int_equal(upgrade_path("Talos", "v1.12.11", "v1.13.9", why, sizeof(why)), 1);
	/* patch upgrades inside a minor are free */
	assert_int_equal(upgrade_path("Talos", "v1.12.1", "v1.12.10", why, sizeof(why)), 1);
	/* Kubernetes: same minor or + 1 (go-kubernetes Path.IsSupported) */
	assert_int_equal(upgrade_path("Kubernetes", "1.34.0", "1.36.0", why, sizeof(why)), -1);
	assert_non_null(strstr(why, "skips a minor version"));
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "2.0.0", why, sizeof(why)), -1);
	assert_int_equal(upgrade_path("Kubernetes", "1.35.4", "1.36.0", why, sizeof(why)), 1);
	/* no latest-patch rule for Kubernetes: upgrade-k8s takes any patch */
	assert_int_equal(upgrade_path("Kubernetes", "1.35.0", "1.36.0", why, sizeof(why)), 1);
}

static const char CFG[] =
	"version: v1alpha1\n"
	"machine:\n"
	"    type: controlplane\n"
	"    kubelet:\n"
	"        image: ghcr.io/siderolabs/kubelet:v1.36.0\n"
	"cluster:\n"
	"    apiServer:\n"
	"        image: registry.k8s.io/kube-apiserver:v1.36.0\n"
	"        certSANs:\n"
	"            - 10.0.0.1\n"
	"    controllerManager:\n"
	"        image: registry.k8s.io/kube-controller-manager:v1.36.0\n"
	"    proxy:\n"
	"        image: registry.k8s.io/kube-proxy:v1.36.0\n"
	"        disabled: true\n"
	"    scheduler:\n"
	"        image: mirror.example/kube-scheduler:v1.35.9-pinned\n"
	"---\n"
	"apiVersion: v1alpha1\n"
	"kind: HostnameConfig\n"
	"hostname: cp-1\n"
	"auto: \"off\"\n";

static char *
step(enum k8s_step s)
{
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char *out;

	assert_int_equal(upgrade_k8s_config(CFG, strlen(CFG), s, "1.35.4", "1.36.0",
					    &b, &e), 0);
	buf_addch(&b, '\0');
	out = xstrdup(b.ptr);
	buf_release(&b);
	return out;
}

static void
test_k8s_steps(void **state)
{
	char *t;

	(void)state;
	/* after the API server: it is new, the others old */
	t = step(K8S_APISERVER);
	assert_non_null(strstr(t, "registry.k8s.io/kube-apiserver:v1.36.0"));
	assert_non_null(strstr(t, "registry.k8s.io/kube-controller-manager:v1.35.4"));
	assert_non_null(strstr(t, "registry.k8s.io/kube-proxy:v1.35.4"));
	assert_non_null(strstr(t, "ghcr.io/siderolabs/kubelet:v1.35.4"));
	/* a pinned image is not the roll's: left alone */
	assert_non_null(strstr(t, "mirror.example/kube-scheduler:v1.35.9-pinned"));
	/* the rest kept, the second document too */
	assert_non_null(strstr(t, "10.0.0.1"));
	assert_non_null(strstr(t, "disabled: true"));
	assert_non_null(strstr(t, "kind: HostnameConfig"));
	free(t);
	t = step(K8S_PROXY);
	assert_non_null(strstr(t, "registry.k8s.io/kube-controller-manager:v1.36.0"));
	assert_non_null(strstr(t, "registry.k8s.io/kube-proxy:v1.36.0"));
	assert_non_null(strstr(t, "ghcr.io/siderolabs/kubelet:v1.35.4"));
	free(t);
	t = step(K8S_KUBELET);
	assert_null(strstr(t, "v1.35.4"));
	free(t);
	t = upgrade_k8s_image(CFG, strlen(CFG), K8S_CONTROLLER_MANAGER);
	assert_string_equal(t, "registry.k8s.io/kube-controller-manager:v1.36.0");
	free(t);
	t = upgrade_k8s_image("machine:\n  type: worker\n", 24, K8S_APISERVER);
	assert_null(t);
	assert_string_equal(k8s_step_name(K8S_SCHEDULER), "kube-scheduler");
	assert_string_equal(k8s_step_field(K8S_KUBELET), "machine.kubelet.image");
}

/* The images journal (k8s_images): format, parse back, gen's defaults. */
static void
test_k8s_images(void **state)
{
	struct k8s_images a, b, d;
	char *f, *g;

	(void)state;
	k8s_images_of(&a, CFG, strlen(CFG));
	f = k8s_images_format(&a);
	assert_string_equal(f, "kube-apiserver=registry.k8s.io/kube-apiserver:v1.36.0 "
			    "kube-controller-manager=registry.k8s.io/kube-controller-manager:v1.36.0 "
			    "kube-scheduler=mirror.example/kube-scheduler:v1.35.9-pinned "
			    "kube-proxy=registry.k8s.io/kube-proxy:v1.36.0 "
			    "kubelet=ghcr.io/siderolabs/kubelet:v1.36.0");
	k8s_images_parse(&b, f);
	g = k8s_images_format(&b);
	assert_string_equal(f, g);
	free(g);
	k8s_images_free(&b);
	k8s_images_parse(&b, "kubelet=host:5000/kubelet:v1 bogus nothing=x");
	assert_string_equal(b.v[K8S_KUBELET], "host:5000/kubelet:v1");
	assert_null(b.v[K8S_APISERVER]);
	k8s_images_free(&b);
	k8s_images_default(&d, "1.35.4", false);
	assert_null(d.v[K8S_APISERVER]);
	assert_string_equal(d.v[K8S_KUBELET], "ghcr.io/siderolabs/kubelet:v1.35.4");
	k8s_images_free(&d);
	k8s_images_default(&d, "1.35.4", true);
	assert_string_equal(d.v[K8S_SCHEDULER], "registry.k8s.io/kube-scheduler:v1.35.4");
	k8s_images_free(&d);
	k8s_images_default(&d, NULL, true);
	assert_null(d.v[K8S_KUBELET]);
	free(f);
	k8s_images_free(&a);
}

/* An image roll's step: the later steps' images as the node runs them. */
static void
test_k8s_config_old(void **state)
{
	struct k8s_images old;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	memset(&old, 0, sizeof(old));
	old.v[K8S_APISERVER] = (char *)"old/apiserver:v1";
	old.v[K8S_KUBELET] = (char *)"old/kubelet:v1";
	assert_int_equal(upgrade_k8s_config_old(CFG, strlen(CFG), K8S_APISERVER, &old,
						&b, &e), 0);
	buf_addch(&b, '\0');
	/* the step's own image is the new one; a later one held back */
	assert_non_null(strstr(b.ptr, "registry.k8s.io/kube-apiserver:v1.36.0"));
	assert_non_null(strstr(b.ptr, "image: old/kubelet:v1"));
	assert_non_null(strstr(b.ptr, "mirror.example/kube-scheduler:v1.35.9-pinned"));
	assert_non_null(strstr(b.ptr, "kind: HostnameConfig"));
	buf_release(&b);
	/* a node that joins during a roll: every roll image at the old version */
	buf_init(&b);
	assert_int_equal(upgrade_k8s_config_join(CFG, strlen(CFG), "1.35.4", "1.36.0",
						 &b, &e), 0);
	buf_addch(&b, '\0');
	assert_non_null(strstr(b.ptr, "registry.k8s.io/kube-apiserver:v1.35.4"));
	assert_non_null(strstr(b.ptr, "ghcr.io/siderolabs/kubelet:v1.35.4"));
	assert_null(strstr(b.ptr, ":v1.36.0"));
	buf_release(&b);
	{
		static const char I[] = "machine:\n  install:\n    image: a.b/installer:v1\n";
		char *img = upgrade_install_image(I, strlen(I));

		assert_string_equal(img, "a.b/installer:v1");
		free(img);
		assert_null(upgrade_install_image(CFG, strlen(CFG)));
	}
}

/*
 * What a step refused NO_REBOOT sends first (ph_k8supgrade.c's
 * reboot_first): the step's own image held back too, the edit's other
 * changes kept.
 */
static void
test_k8s_config_before(void **state)
{
	struct k8s_images old;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	/* a version roll at the controller manager: the API server (done)
	 * at the new version, the controller manager on at the old one */
	assert_int_equal(upgrade_k8s_config_before(CFG, strlen(CFG), K8S_CONTROLLER_MANAGER,
						   "1.35.4", "1.36.0", &b, &e), 0);
	buf_addch(&b, '\0');
	assert_non_null(strstr(b.ptr, "registry.k8s.io/kube-apiserver:v1.36.0"));
	assert_non_null(strstr(b.ptr, "registry.k8s.io/kube-controller-manager:v1.35.4"));
	assert_non_null(strstr(b.ptr, "ghcr.io/siderolabs/kubelet:v1.35.4"));
	assert_non_null(strstr(b.ptr, "mirror.example/kube-scheduler:v1.35.9-pinned"));
	assert_non_null(strstr(b.ptr, "kind: HostnameConfig"));
	buf_release(&b);
	/* an image roll's first step: its own image as the node runs it */
	memset(&old, 0, sizeof(old));
	old.v[K8S_APISERVER] = (char *)"old/apiserver:v1";
	old.v[K8S_KUBELET] = (char *)"old/kubelet:v1";
	buf_init(&b);
	assert_int_equal(upgrade_k8s_config_old_before(CFG, strlen(CFG), K8S_APISERVER,
						       &old, &b, &e), 0);
	buf_addch(&b, '\0');
	assert_non_null(strstr(b.ptr, "image: old/apiserver:v1"));
	assert_non_null(strstr(b.ptr, "image: old/kubelet:v1"));
	assert_null(strstr(b.ptr, "registry.k8s.io/kube-apiserver:v1.36.0"));
	assert_non_null(strstr(b.ptr, "registry.k8s.io/kube-controller-manager:v1.36.0"));
	buf_release(&b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_paths_unsupported),
		cmocka_unit_test(test_k8s_steps),
		cmocka_unit_test(test_k8s_images),
		cmocka_unit_test(test_k8s_config_old),
		cmocka_unit_test(test_k8s_config_before),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
