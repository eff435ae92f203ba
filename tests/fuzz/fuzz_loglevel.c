/* Fuzz target: the log level spec ("info,bus=debug"), read from config, SIGHUP and
 * the admin API. A spec accepted by the check must apply, and one refused must
 * change nothing. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "skein/sk_log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *spec = malloc(size + 1);
	const char *bad = NULL;
	int checked, applied;

	if (!spec)
		return 0;
	memcpy(spec, data, size);
	spec[size] = '\0';
	sk_log_levels_set("info", NULL);
	checked = sk_log_levels_check(spec);
	applied = sk_log_levels_set(spec, &bad);
	if ((checked == 0) != (applied == 0))
		abort();
	if (applied && sk_log_level_get("bus") != SK_LOG_INFO)
		abort();
	free(spec);
	return 0;
}
