/*
 * libFuzzer target for the config loader: any bytes must give a config or
 * diagnostics, never a crash, a leak or undefined behaviour.
 */
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "config/validate.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config *cfg = NULL;
	struct diag diag;
	FILE *null = fopen("/dev/null", "w");

	diag_init(&diag, "fuzz/config.yml");
	config_load_mem(&cfg, "fuzz/config.yml", (const char *)data, size,
			&diag, CONFIG_NO_SIBLINGS);
	if (null) {
		diag_print(&diag, null);
		fclose(null);
	}
	config_free(cfg);
	diag_release(&diag);
	return 0;
}
