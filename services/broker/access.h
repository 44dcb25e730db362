/* Who may log in, and access that ends when Bitbucket (or a rule) ends it.
 *
 *   at login   login.finish's CHECK_ACCESS step (between IDENTIFY and
 *              LINK_USER): the integration's rules, with the user's own
 *              token; a refused person gets FORBIDDEN "access_restricted",
 *              no account, and a "login.refused" audit entry.
 *   re-checks  one thread per broker process asks the registry for the
 *              identities due (users with live sessions, last checked
 *              longer ago than PORTICO_ACCESS_RECHECK_SECONDS), checks each
 *              against Bitbucket and reports back; a failed check ends the
 *              user's sessions and marks the account. */
#ifndef PORTICO_BROKER_ACCESS_H
#define PORTICO_BROKER_ACCESS_H

#include "login_steps.h"

/* Take PORTICO_ACCESS_RECHECK_SECONDS from broker_cfg (checked at start). */
void broker_access_config(void);
/* Start and stop the re-check thread; holder names this process in token
 * leases (the thread adds "/access"). */
int broker_access_start(const char *holder);
void broker_access_stop(void);

/* The CHECK_ACCESS step of login.finish. */
fin_state_t login_check_access(fin_ctx_t *c);

/* True when there is no pattern rule or the person matches it (pure). */
bool broker_access_patterns_pass(const Portico__Registry__AccessRules *rules, const char *username, const char *email);

#endif
