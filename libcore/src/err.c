/* Error names and messages for the codes of sk_err.h. */
#include <string.h>
#include "skein/sk_err.h"

const char *sk_strerror(int err)
{
	switch (err) {
#define SK_ERR_MSG(name, val, msg) \
	case (val):                \
		return msg;
		SK_ERRNO_MAP(SK_ERR_MSG)
#undef SK_ERR_MSG
	default:
		break;
	}
	if (err < 0 && err > -4000)
		return strerror(-err);
	return err == 0 ? "success" : "unknown error";
}

const char *sk_err_name(int err)
{
	switch (err) {
#define SK_ERR_NAME(name, val, msg) \
	case (val):                 \
		return #name;
		SK_ERRNO_MAP(SK_ERR_NAME)
#undef SK_ERR_NAME
	default:
		return "UNKNOWN";
	}
}
