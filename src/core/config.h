/* Server configuration: every `sluice serve` flag, its environment variable and its
 * default, from (in order of precedence) the command line, the environment, a config file
 * (--config, "name = value" lines) and built-in defaults. Written once at start-up, then
 * read-only for every thread. */
#ifndef SLUICE_CORE_CONFIG_H
#define SLUICE_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct config {
    char *listen;
    char *data_dir;
    char *db;
    char *admin_token;
    char *master_key_file;
    char *config_file;
    int64_t lease_ms;
    int64_t webhook_timeout_ms;
    int64_t webhook_max_connections;
    double rate_limit;
    char *public_url;
    char *smtp_url;
    char *smtp_from;
    char *smtp_ca_file;
    int64_t s3_batch_max_bytes;
    int64_t s3_batch_max_age_ms;
    int64_t retention_events_ms;
    int64_t retention_deliveries_ms;
    int64_t retention_alerts_ms;
    bool allow_private_targets;
    double time_scale;
    char *roles;
    char *node_id;           /* set by nodes_identity() when not given */
    int64_t node_timeout_ms; /* silent this long: dead */
    char *log_level;
    char *log_format;
    int64_t http_threads;
    int64_t max_connections;
};

/* Parses argv (after the subcommand) and the environment into cfg. On a bad value writes a
 * one-line message to err and returns -1; returns 1 when --help was printed to out; 0 ok. */
int config_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err);
/* Prints the flag reference (flags, variables, defaults) to out. */
void config_usage(FILE *out);
void config_cleanup(struct config *cfg);
/* True when roles includes name ("api", "webhook", "s3", "alerts", "notify"). */
bool config_has_role(const struct config *cfg, const char *name);

#endif
