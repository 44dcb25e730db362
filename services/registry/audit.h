/* audit: who did what to which object, when and from where.
 *
 * Written in the same transaction as the change it records, so the log
 * never claims a change that was rolled back. Never pass a secret. */
#ifndef PORTICO_REGISTRY_AUDIT_H
#define PORTICO_REGISTRY_AUDIT_H

#include "db.h"

#include <stdbool.h>

/* Actions the registry writes itself. */
#define AUDIT_INTEGRATION_CREATE "integration.create"
#define AUDIT_INTEGRATION_UPDATE "integration.update"
#define AUDIT_INTEGRATION_DELETE "integration.delete"
#define AUDIT_ADMIN_GRANT "admin.grant"
#define AUDIT_ADMIN_REVOKE "admin.revoke"
#define AUDIT_SETUP_MODE_ON "setup_mode.on"
#define AUDIT_SETUP_MODE_OFF "setup_mode.off"
#define AUDIT_SETUP_TOKEN_FAILED "setup_token.failed"
#define AUDIT_SETUP_TOKEN_ACCEPTED "setup_token.accepted"
#define AUDIT_SETUP_TOKEN_ISSUED "setup_token.issued"
#define AUDIT_USER_LOGIN "user.login"
#define AUDIT_SESSION_END "session.end"
#define AUDIT_KEY_ROTATE "key.rotate"

/* Failures (actions ending in ".failed") from the same address, for the
 * same object and detail, within this window are counted on one row
 * (repeats, last_at) instead of adding rows. */
#define AUDIT_REPEAT_WINDOW "10 minutes"

db_rc_t audit_write(db_t *db, const char *actor, const char *action, const char *object, const char *addr,
                    const char *detail);

#endif
