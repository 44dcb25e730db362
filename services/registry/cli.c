#include "cli.h"

#include "audit.h"
#include "bus.h"
#include "db.h"
#include "handlers.h"
#include "log.h"
#include "migrations.h"
#include "rotate.h"
#include "secrets.h"
#include "setup.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CLI_ACTOR "cli"

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv, reg_ctx_t *ctx);
    bool needs_schema; /* refuse unless the schema is current */
} command_t;

void cli_usage(void)
{
    fprintf(stderr,
            "usage: portico-registry [serve]                       run the registry\n"
            "       portico-registry healthcheck                   exit 0 when /readyz answers 200\n"
            "       portico-registry migrate                       apply schema migrations\n"
            "       portico-registry setup-mode on|off             turn Setup Mode on (new setup token) or off\n"
            "       portico-registry setup-token                   show the setup token and when it expires\n"
            "       portico-registry admin grant|revoke NAME|#ID   grant or revoke the admin role\n"
            "       portico-registry integrations list             list integrations\n"
            "       portico-registry rotate-key NEW_KEY_FILE       re-encrypt every secret under a new key\n");
}

static void s_fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "portico-registry: ");
    fprintf(stderr, fmt, arg);
    fputc('\n', stderr);
}

/* Run a bus handler in-process: same validation, SQL and audit as over
 * the bus. On OK and desc != NULL, *out is the decoded reply. 0 or -1. */
static int s_call(reg_ctx_t *ctx, bus_handler_fn fn, const ProtobufCMessage *req,
                  const ProtobufCMessageDescriptor *desc, ProtobufCMessage **out)
{
    bus_request_t r;
    bus_reply_t reply;
    memset(&r, 0, sizeof r);
    memset(&reply, 0, sizeof reply);
    snprintf(r.method, sizeof r.method, "cli");
    fn(ctx, &r, req, &reply);
    int rc = 0;
    if (reply.err.code != PORTICO__ERROR_CODE__OK) {
        s_fail("%s", reply.err.message);
        rc = -1;
    } else if (desc && out) {
        *out = protobuf_c_message_unpack(desc, NULL, reply.body_len, reply.body);
        if (!*out) {
            s_fail("%s", "internal error: could not read the result");
            rc = -1;
        }
    }
    bus_reply_clear(&reply);
    return rc;
}

static int s_migrate(int argc, char **argv, reg_ctx_t *ctx)
{
    (void)argv;
    if (argc != 1)
        return 2;
    char why[512];
    int applied = 0, version = 0;
    if (migrations_apply(ctx->db, &applied, &version, why, sizeof why) < 0) {
        s_fail("%s", why);
        return 1;
    }
    printf("Database schema is at version %d (%d migration%s applied now).\n", version, applied,
           applied == 1 ? "" : "s");
    return 0;
}

static int s_setup_mode(int argc, char **argv, reg_ctx_t *ctx)
{
    if (argc != 2 || (strcmp(argv[1], "on") && strcmp(argv[1], "off")))
        return 2;
    bool on = !strcmp(argv[1], "on");
    Portico__Registry__SetSetupModeRequest req = PORTICO__REGISTRY__SET_SETUP_MODE_REQUEST__INIT;
    req.on = on;
    req.actor = CLI_ACTOR;
    /* Whoever is locked out has usually lost the old token too. The new
     * one is stored (and the old one's sessions ended) before Setup Mode
     * is on: an older token never works again, not even for a moment, nor
     * when this command fails half way. */
    char token[64] = "";
    if (on && setup_token_issue(ctx->db, ctx->opts, CLI_ACTOR, token, sizeof token) < 0) {
        s_fail("could not store a new setup token: %s", db_last_error(ctx->db));
        return 1;
    }
    if (s_call(ctx, h_settings_set_setup_mode, &req.base, NULL, NULL) < 0) {
        explicit_bzero(token, sizeof token);
        return 1;
    }
    if (!on) {
        printf("Setup Mode is off. The admin section now requires an admin account.\n");
        return 0;
    }
    if (token[0])
        printf("Setup Mode is on.\n"
               "Setup token: %s\n"
               "Open /admin and enter it in the Setup token field. It works for %d hours and is kept in\n"
               "%s (`portico-registry setup-token` shows it again). Earlier setup tokens\n"
               "and the Setup Mode sessions they opened no longer work.\n",
               token, ctx->opts->setup_token_ttl_hours, ctx->opts->setup_token_file);
    else
        printf("Setup Mode is on. Open /admin with the setup token from PORTICO_SETUP_TOKEN.\n");
    explicit_bzero(token, sizeof token);
    return 0;
}

static int s_setup_token(int argc, char **argv, reg_ctx_t *ctx)
{
    (void)argv;
    if (argc != 1)
        return 2;
    return setup_token_show(ctx->db, ctx->opts);
}

static int s_admin(int argc, char **argv, reg_ctx_t *ctx)
{
    if (argc != 3 || (strcmp(argv[1], "grant") && strcmp(argv[1], "revoke")))
        return 2;
    Portico__Registry__SetAdminRequest req = PORTICO__REGISTRY__SET_ADMIN_REQUEST__INIT;
    req.admin = !strcmp(argv[1], "grant");
    req.actor = CLI_ACTOR;
    const char *who = argv[2];
    if (who[0] == '#') {
        char *end = NULL;
        req.id = strtoll(who + 1, &end, 10);
        if (!who[1] || *end || req.id <= 0) {
            s_fail("\"%s\" is not a user id: write #42, or give the user name", who);
            return 2;
        }
    } else {
        req.name = (char *)(uintptr_t)who;
    }
    ProtobufCMessage *out = NULL;
    if (s_call(ctx, h_user_set_admin, &req.base, &portico__registry__get_user_reply__descriptor, &out) < 0)
        return 1;
    const Portico__Registry__User *u = ((Portico__Registry__GetUserReply *)out)->user;
    if (u)
        printf("%s (#%" PRId64 ") is %s.\n", u->name, u->id, u->is_admin ? "an admin" : "not an admin");
    protobuf_c_message_free_unpacked(out, NULL);
    return 0;
}

static int s_integrations(int argc, char **argv, reg_ctx_t *ctx)
{
    if (argc != 2 || strcmp(argv[1], "list"))
        return 2;
    Portico__Registry__ListIntegrationsRequest req = PORTICO__REGISTRY__LIST_INTEGRATIONS_REQUEST__INIT;
    ProtobufCMessage *out = NULL;
    if (s_call(ctx, h_integration_list, &req.base, &portico__registry__list_integrations_reply__descriptor, &out) < 0)
        return 1;
    const Portico__Registry__ListIntegrationsReply *list = (const Portico__Registry__ListIntegrationsReply *)out;
    if (list->n_integrations == 0) {
        printf("No integrations.\n");
    } else {
        printf("%-5s %-24s %-7s %-8s %-6s %s\n", "ID", "NAME", "OAUTH", "ENABLED", "USERS", "BASE URL");
        for (size_t i = 0; i < list->n_integrations; i++) {
            const Portico__Registry__Integration *in = list->integrations[i];
            printf("%-5" PRId64 " %-24.24s %-7d %-8s %-6" PRId64 " %s\n", in->id, in->name, in->oauth_version,
                   in->enabled ? "yes" : "no", in->identity_count, in->base_url);
        }
    }
    protobuf_c_message_free_unpacked(out, NULL);
    return 0;
}

static int s_rotate_key(int argc, char **argv, reg_ctx_t *ctx)
{
    if (argc != 2)
        return 2;
    char why[600], detail[160];
    crypto_keyring_t *keys = secrets_load(ctx->opts->key_file, ctx->opts->key_file_previous, why, sizeof why);
    if (!keys) {
        s_fail("%s", why);
        return 1;
    }
    int status = 1;
    char reason[300];
    if (crypto_keyring_add_file(keys, argv[1], true, reason, sizeof reason) < 0) {
        s_fail("new key: %s", reason);
        goto out;
    }
    rotate_count_t counts[ROTATE_COLUMNS];
    int rc = rotate_keys(ctx->db, keys, counts);
    long resealed = 0, current = 0, changed = 0, failed = 0;
    for (int i = 0; i < ROTATE_COLUMNS; i++) {
        resealed += counts[i].resealed;
        current += counts[i].current;
        changed += counts[i].changed;
        failed += counts[i].failed;
        printf("  %-38s %5ld re-encrypted, %5ld already under the new key%s\n", counts[i].label, counts[i].resealed,
               counts[i].current, counts[i].failed ? ", some could not be opened" : "");
    }
    uint32_t id = crypto_keyring_primary_id(keys);
    printf("Re-encrypted %ld secret%s under key %08x; %ld were already under it, %ld changed meanwhile, "
           "%ld could not be opened.\n",
           resealed, resealed == 1 ? "" : "s", (unsigned)id, current, changed, failed);
    snprintf(detail, sizeof detail, "key_id=%08x resealed=%ld changed=%ld failed=%ld", (unsigned)id, resealed, changed,
             failed);
    audit_write(ctx->db, CLI_ACTOR, "key.rotate", "secrets", "", detail);
    if (rc < 0) {
        s_fail("the database failed during the rotation: %s; run the command again to finish", db_last_error(ctx->db));
        goto out;
    }
    if (failed || changed) {
        printf("Some values were not moved: run the command again%s.\n",
               failed ? " with the key that sealed them as PORTICO_SECRET_KEY_FILE_PREVIOUS" : "");
        goto out;
    }
    if (resealed)
        printf("Next: restart every portico-registry with PORTICO_SECRET_KEY_FILE=%s and the old key as\n"
               "PORTICO_SECRET_KEY_FILE_PREVIOUS, then run this command again: the registries sealed new\n"
               "values with the old key until then. Remove the old key only once a run re-encrypts 0.\n",
               argv[1]);
    else
        printf("Every secret is under key %08x. Once every portico-registry runs with it as\n"
               "PORTICO_SECRET_KEY_FILE, the old key is no longer needed.\n",
               (unsigned)id);
    status = 0;
out:
    crypto_keyring_destroy(&keys);
    return status;
}

/* clang-format off */
static const command_t s_commands[] = {
    {"migrate", s_migrate, false},
    {"setup-mode", s_setup_mode, true},
    {"setup-token", s_setup_token, true},
    {"admin", s_admin, true},
    {"integrations", s_integrations, true},
    {"rotate-key", s_rotate_key, true},
    {NULL, NULL, false},
};
/* clang-format on */

bool cli_is_command(const char *name)
{
    for (const command_t *c = s_commands; c->name; c++)
        if (!strcmp(c->name, name))
            return true;
    return false;
}

int cli_main(int argc, char **argv, const reg_options_t *opts)
{
    const command_t *cmd = NULL;
    for (const command_t *c = s_commands; c->name; c++)
        if (argc > 0 && !strcmp(c->name, argv[0]))
            cmd = c;
    if (!cmd) {
        cli_usage();
        return 2;
    }
    /* An operator reads the command's own output; log lines only for trouble,
     * unless asked for. */
    if (!getenv("PORTICO_LOG_LEVEL"))
        log_set_level(LOG_LEVEL_WARN);
    int status = 1;
    db_t *db = db_new(opts->database_url, opts->statement_timeout_ms, "cli");
    if (!db)
        return 1;
    if (!db_ensure(db, 5000)) {
        s_fail("could not connect to the database: %s", db_last_error(db));
        goto out;
    }
    if (cmd->needs_schema) {
        char why[300];
        int version = 0;
        if (migrations_current(db, &version, why, sizeof why) < 0) {
            s_fail("%s", why);
            goto out;
        }
        if (version != migrations_latest()) {
            char text[200];
            snprintf(text, sizeof text, "the database schema is at version %d but this portico-registry expects %d%s",
                     version, migrations_latest(),
                     version < migrations_latest() ? ": run \"portico-registry migrate\" first" : "");
            s_fail("%s", text);
            goto out;
        }
    }
    reg_ctx_t ctx = {db, NULL, opts};
    status = cmd->fn(argc, argv, &ctx);
    if (status == 2)
        cli_usage();
out:
    db_destroy(&db);
    return status;
}
