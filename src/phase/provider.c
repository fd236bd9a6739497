#include "phase/provider.h"

const struct provider *
provider_for(enum platform p)
{
	switch (p) {
	case PLATFORM_PROXMOX:
		return &provider_proxmox;
	case PLATFORM_VPS:
		return &provider_vps;
	default:
		return NULL;
	}
}
