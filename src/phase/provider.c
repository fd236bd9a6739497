#include "phase/provider.h"

const struct provider *
provider_for(enum platform p)
{
	switch (p) {
	case PLATFORM_PROXMOX:
		return &provider_proxmox;
	default:
		/* vps: validate refuses it until apply can install there */
		return NULL;
	}
}
