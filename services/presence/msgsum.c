/* msgsum: simple-message-summary builder (RFC 3842 §5.2). */
#include <stdio.h>
#include "skein/sk_err.h"
#include "skein/sk_mem.h"
#include "msgsum.h"

int msgsum_build(const char *account, unsigned long new_msgs, unsigned long old_msgs, char **outp)
{
	if (!outp)
		return SK_EINVAL;
	*outp = NULL;
	if (account) {
		if (!account[0])
			return SK_EINVAL;
		/* msg-account = "Message-Account" HCOLON Account-URI (§5.2): no LWS in
		 * it, and a CR or LF would start a summary line of its own. */
		for (const unsigned char *p = (const unsigned char *)account; *p; p++)
			if (*p <= ' ' || *p == 0x7f)
				return SK_EINVAL;
	}
	*outp = sk_strdupf("Messages-Waiting: %s\r\n%s%s%sText-Message: %lu/%lu\r\n",
			   new_msgs ? "yes" : "no", account ? "Message-Account: " : "",
			   account ? account : "", account ? "\r\n" : "", new_msgs, old_msgs);
	return *outp ? 0 : SK_ENOMEM;
}
