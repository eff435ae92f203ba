/* msgsum: message summary bodies (application/simple-message-summary, RFC 3842 §5)
 * for the message-summary event package: whether messages wait, for which account,
 * and how many of the text-message class (RFC 3458 §4.2: the offline IM store is a
 * mailbox of instant messages). Loop-free. */
#ifndef SKEIN_MSGSUM_H
#define SKEIN_MSGSUM_H

#include <stddef.h>

#define MSGSUM_MIME "application/simple-message-summary"

/* "Messages-Waiting: yes|no\r\nMessage-Account: <account>\r\nText-Message:
 * <new>/<old>\r\n" (RFC 3842 §5.2: yes when any message is new) into *outp
 * (refcounted, sk_deref). account NULL: no Message-Account line. SK_EINVAL when
 * account is empty or holds white space or a control character (a URI has none,
 * and a CR or LF would forge a line), SK_ENOMEM. */
int msgsum_build(const char *account, unsigned long new_msgs, unsigned long old_msgs, char **outp);

#endif
