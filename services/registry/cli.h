/* cli: administration commands on the same binary, for operators.
 *
 *   portico-registry migrate
 *   portico-registry setup-mode on|off
 *   portico-registry admin grant|revoke <user name or #id>
 *   portico-registry integrations list
 *   portico-registry rotate-key <new key file>
 *
 * They read the same PORTICO_* variables as the server, talk to the
 * database directly (the server need not run), run the very handlers the
 * bus runs, and are audited with actor "cli". */
#ifndef PORTICO_REGISTRY_CLI_H
#define PORTICO_REGISTRY_CLI_H

#include "options.h"

#include <stdbool.h>

/* True when argv[1] names a CLI command. */
bool cli_is_command(const char *name);
/* Run one command; returns the exit status (0 ok, 1 failed, 2 usage). */
int cli_main(int argc, char **argv, const reg_options_t *opts);
void cli_usage(void);

#endif
