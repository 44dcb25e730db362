/* Names and emails from Bitbucket into the broker's fixed buffers, which
 * hold what the registry keeps (oauth.h: broker_identity_t). */
#ifndef PORTICO_BROKER_NAMES_H
#define PORTICO_BROKER_NAMES_H

#include <stddef.h>

/* in into out whole, or out empty when it does not fit: a name or an
 * email cut short could be someone else's, or match access rules the
 * whole one does not. */
void broker_copy_whole(char *out, size_t size, const char *in);
/* in into out, shortened when it does not fit, at a UTF-8 character
 * boundary: for a display name, which the registry would refuse, and with
 * it every login of that person, if it ended inside a character. */
void broker_copy_cut(char *out, size_t size, const char *in);

#endif
