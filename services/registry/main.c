/* portico-registry: the only Portico process with database credentials.
 * Without arguments (or with "serve") it serves the registry API on the
 * bus; "healthcheck" probes a running one; the rest are operator commands
 * (cli.h). */
#include "busauth.h"
#include "cli.h"
#include "config.h"
#include "health.h"
#include "options.h"
#include "server.h"
#include "service.h"

#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    service_init_logging("registry");
    if (argc >= 2 && !strcmp(argv[1], "bus-keygen"))
        return busauth_keygen_main("registry", argc, argv);
    if (argc >= 2 && !strcmp(argv[1], "healthcheck")) {
        char addr[256];
        config_addr_or_die("PORTICO_HEALTH_ADDR", "127.0.0.1:8081", false, addr, sizeof addr);
        return health_check_url(addr);
    }
    if (argc >= 2 && (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        cli_usage();
        return 0;
    }
    reg_options_t opts;
    reg_options_load(&opts);
    if (argc < 2 || !strcmp(argv[1], "serve"))
        return server_run(&opts);
    if (cli_is_command(argv[1]))
        return cli_main(argc - 1, argv + 1, &opts);
    fprintf(stderr, "portico-registry: unknown command \"%s\"\n", argv[1]);
    cli_usage();
    return 2;
}
