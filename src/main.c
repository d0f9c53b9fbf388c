/* sluice: the command line. Wiring only: parse arguments, start the subsystems in order,
 * wait for SIGTERM/SIGINT on the main thread, stop them in reverse order. */
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alerts.h"
#include "alert/policies.h"
#include "api/api.h"
#include "core/config.h"
#include "core/log.h"
#include "core/timeutil.h"
#include "deliver/deliver.h"
#include "http/http.h"
#include "notify/notifier.h"
#include "sched/scheduler.h"
#include "store/store.h"
#include "stream/deliveries.h"
#include "stream/routing.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

static void usage(FILE *out)
{
    fprintf(out,
            "sluice %s: event delivery and failure alerting for commerce platforms\n\n"
            "Usage:\n"
            "  sluice serve [flags]   run the server (see sluice serve --help)\n"
            "  sluice version         print the version\n"
            "  sluice help            show this help\n\n"
            "With no flags, `sluice serve` runs on SQLite in ./sluice-data/ and listens on\n"
            "http://127.0.0.1:8080 (API under /v1, console at /).\n",
            SLUICE_VERSION);
}

static void on_commit_wake(unsigned mask)
{
    deliver_wake(mask);
    if (mask & STORE_WAKE_NOTIFY)
        notifier_wake();
}

/* SQLite has one node: every lease is this node's own from an earlier run. */
static enum err release_all_leases(struct db *db, void *arg)
{
    return deliveries_release_leases(db, NULL, true, arg);
}

static int serve(int argc, char **argv)
{
    /* Signals are taken by sigwait() on this thread only: block them before anything else,
     * so a SIGTERM during start-up is handled as a graceful stop once running. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A file-size limit (ulimit -f) then fails the write with EFBIG, which the store answers
     * as a full disk (503 until there is room), instead of killing the process. */
    signal(SIGXFSZ, SIG_IGN);
    struct config cfg;
    int prc = config_parse(&cfg, argc, argv, stdout, stderr);
    if (prc != 0) {
        config_cleanup(&cfg);
        return prc > 0 ? 0 : 2;
    }
    if (log_configure(cfg.log_level, cfg.log_format) != 0) {
        fprintf(stderr, "sluice: --log-level must be debug|info|warn|error and --log-format "
                        "text|json\n");
        config_cleanup(&cfg);
        return 2;
    }
    time_set_scale(cfg.time_scale);
    deliver_register();

    char err[512] = "";
    int code = 1;
    /* The listen address first: when it is taken, say so before anything is created on
     * disk (data dir, admin token, master key, database). */
    if (http_listen(&cfg, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        goto out;
    }
    if (store_start(&cfg, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        http_stop(); /* closes the bound socket */
        goto out;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (store_kind() == DB_SQLITE) {
        int64_t n = 0;
        store_write(release_all_leases, &n, 0);
        if (n)
            log_info("main", "released %lld lease(s) left by the previous run", (long long)n);
    }
    api_init(&cfg);
    const char *what = "";
    if (deliver_start(&cfg, &what) != ERR_OK) {
        fprintf(stderr, "sluice: cannot start the %s engine\n", what);
        goto stop;
    }
    alerts_register_metrics();
    if (notifier_start(&cfg, config_has_role(&cfg, "notify")) != ERR_OK) {
        fprintf(stderr, "sluice: cannot start the notifier\n");
        goto stop;
    }
    /* Engines start looking at everything; from now on commits wake them. */
    store_set_wake_hook(on_commit_wake);
    if (scheduler_start(&cfg) != ERR_OK) {
        fprintf(stderr, "sluice: cannot start the scheduler\n");
        goto stop;
    }
    if (http_start(&cfg, api_routes, err, sizeof err) != ERR_OK) {
        fprintf(stderr, "sluice: %s\n", err);
        goto stop;
    }
    char host[128];
    const char *colon = strrchr(cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - cfg.listen), cfg.listen);
    if (!*host || !strcmp(host, "0.0.0.0"))
        snprintf(host, sizeof host, "127.0.0.1");
    printf("Sluice %s listening on http://%s:%d\n", SLUICE_VERSION, host, http_port());
    printf("Console: http://%s:%d/\n", host, http_port());
    printf("Database: %s\n", store_kind() == DB_PG ? "postgresql" : cfg.db);
    fflush(stdout);
    log_info("main", "node %s started (roles %s, time scale %g)", cfg.node_id, cfg.roles,
             cfg.time_scale);

    int sig = 0;
    sigwait(&sigs, &sig);
    log_info("main", "received %s, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    code = 0;
stop:
    http_stop();
    scheduler_stop();
    notifier_stop();
    store_set_wake_hook(NULL); /* no wake-up reaches an engine being stopped */
    deliver_stop();
    store_stop();
    routing_cleanup();
    policy_index_cleanup();
    curl_global_cleanup();
    if (code == 0)
        log_info("main", "stopped cleanly");
out:
    config_cleanup(&cfg);
    return code;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "help") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "-h")) {
        usage(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "version") || !strcmp(argv[1], "--version")) {
        printf("sluice %s\n", SLUICE_VERSION);
        return 0;
    }
    if (!strcmp(argv[1], "serve"))
        return serve(argc - 2, argv + 2);
    fprintf(stderr, "sluice: unknown command \"%s\" (try sluice help)\n", argv[1]);
    return 2;
}
