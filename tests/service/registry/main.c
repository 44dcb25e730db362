/* The registry service tests: one binary, groups run in a fixed order
 * against the registry and PostgreSQL that run.sh started. Set
 * REG_TEST_ONLY=name to run one group (those that do not depend on
 * earlier ones: db, migrations, rotation). */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*run)(void);
} group_t;

static const group_t s_groups[] = {
    {"settings", run_settings_tests},
    {"users", run_user_tests}, /* early: the first login makes the first admin */
    {"integrations", run_integration_tests},
    {"sessions", run_session_tests},
    {"login", run_login_tests},
    {"tokens", run_token_tests},
    {"access", run_access_tests},
    {"audit", run_audit_tests},
    {"raw", run_raw_tests},
    {"db", run_db_tests},
    {"cli", run_cli_tests},
    {"outage", run_outage_tests},
    {"migrations", run_migration_tests},
    {"rotation", run_rotation_tests},
};

int main(void)
{
    bus_init();
    /* The tests speak as the web; a method only the broker may call is
     * retried as the broker (h_call_with). */
    busauth_init_or_die("web", 0, BUS_REGISTRY);
    const char *only = getenv("REG_TEST_ONLY");
    int failed = 0;
    for (size_t i = 0; i < sizeof s_groups / sizeof s_groups[0]; i++)
        if (!only || !*only || !strcmp(only, s_groups[i].name)) {
            printf("\n== %s\n", s_groups[i].name);
            fflush(stdout);
            failed += s_groups[i].run();
        }
    printf("\nregistry service tests: %d failed\n", failed);
    return failed ? 1 : 0;
}
