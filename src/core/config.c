/* Flag/env/file parsing for `sluice serve`. Runs on the main thread before others start. */
#include "core/config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "core/timeutil.h"
#include "core/xalloc.h"

enum opt_type { OPT_STR, OPT_BOOL, OPT_DURATION, OPT_SIZE, OPT_INT, OPT_DOUBLE };

struct opt {
    const char *name; /* flag without "--" */
    const char *env;
    enum opt_type type;
    size_t off;
    const char *def; /* NULL: unset */
    const char *arg;
    const char *help;
};

#define O(f) offsetof(struct config, f)
static const struct opt opts[] = {
    {"listen", "SLUICE_LISTEN", OPT_STR, O(listen), "127.0.0.1:8080", "ADDR",
     "HTTP API and console address (host:port, [v6]:port or :port)"},
    {"data-dir", "SLUICE_DATA_DIR", OPT_STR, O(data_dir), "./sluice-data", "DIR",
     "SQLite file, spool files, generated keys"},
    {"db", "SLUICE_DB", OPT_STR, O(db), NULL, "URL",
     "sqlite:PATH (default sqlite:<data-dir>/sluice.db) or postgres://user@host:port/db"},
    {"admin-token", "SLUICE_ADMIN_TOKEN", OPT_STR, O(admin_token), NULL, "TOKEN",
     "token for /v1/admin/* (default: generated into <data-dir>/admin-token)"},
    {"master-key-file", "SLUICE_MASTER_KEY_FILE", OPT_STR, O(master_key_file), NULL, "FILE",
     "32-byte hex key encrypting secrets at rest (default: generated in the data dir)"},
    {"config", "SLUICE_CONFIG", OPT_STR, O(config_file), NULL, "FILE",
     "read \"name = value\" lines (flag names without --) from FILE"},
    {"lease", "SLUICE_LEASE", OPT_DURATION, O(lease_ms), "30s", "D",
     "how long claimed work stays with its node without renewal"},
    {"webhook-timeout", "SLUICE_WEBHOOK_TIMEOUT", OPT_DURATION, O(webhook_timeout_ms), "15s", "D",
     "per webhook attempt; never scaled by --time-scale"},
    {"webhook-max-connections", "SLUICE_WEBHOOK_MAX_CONNECTIONS", OPT_INT,
     O(webhook_max_connections), "256", "N", "global cap on open outbound connections"},
    {"rate-limit", "SLUICE_RATE_LIMIT", OPT_DOUBLE, O(rate_limit), "0", "R",
     "per-key requests/s, 429 past it (0: off)"},
    {"public-url", "SLUICE_PUBLIC_URL", OPT_STR, O(public_url), NULL, "URL",
     "base URL for links in emails (default http://<listen>)"},
    {"smtp-url", "SLUICE_SMTP_URL", OPT_STR, O(smtp_url), NULL, "URL",
     "smtp:// or smtps:// (user:pass@ in the URL); unset: mail disabled"},
    {"smtp-from", "SLUICE_SMTP_FROM", OPT_STR, O(smtp_from), NULL, "ADDR",
     "From address of notification emails"},
    {"smtp-ca-file", "SLUICE_SMTP_CA_FILE", OPT_STR, O(smtp_ca_file), NULL, "FILE",
     "PEM CA bundle to verify the SMTP server's certificate (default: the system's)"},
    {"s3-batch-max-bytes", "SLUICE_S3_BATCH_MAX_BYTES", OPT_SIZE, O(s3_batch_max_bytes), "50MB",
     "N", "close an S3 batch at this many uncompressed bytes"},
    {"s3-batch-max-age", "SLUICE_S3_BATCH_MAX_AGE", OPT_DURATION, O(s3_batch_max_age_ms), "5m", "D",
     "close an S3 batch this long after the previous close"},
    {"retention-events", "SLUICE_RETENTION_EVENTS", OPT_DURATION, O(retention_events_ms), "14d",
     "D", "purge events older than this"},
    {"retention-deliveries", "SLUICE_RETENTION_DELIVERIES", OPT_DURATION,
     O(retention_deliveries_ms), "30d", "D", "purge finished deliveries older than this"},
    {"retention-alerts", "SLUICE_RETENTION_ALERTS", OPT_DURATION, O(retention_alerts_ms), "90d",
     "D", "purge alerts older than this"},
    {"allow-private-targets", "SLUICE_ALLOW_PRIVATE_TARGETS", OPT_BOOL, O(allow_private_targets),
     "false", NULL, "allow webhooks to loopback/private addresses (SSRF guard off)"},
    {"time-scale", "SLUICE_TIME_SCALE", OPT_DOUBLE, O(time_scale), "1", "F",
     "divide every scheduled duration by F (tests, demos); never I/O timeouts or leases"},
    {"roles", "SLUICE_ROLES", OPT_STR, O(roles), "api,webhook,s3,alerts,notify", "LIST",
     "which work this node does"},
    {"node-id", "SLUICE_NODE_ID", OPT_STR, O(node_id), NULL, "ID",
     "this node's name in leases and attempts (default host-pid)"},
    {"log-level", "SLUICE_LOG_LEVEL", OPT_STR, O(log_level), "info", "LEVEL",
     "debug, info, warn or error"},
    {"log-format", "SLUICE_LOG_FORMAT", OPT_STR, O(log_format), "text", "FMT", "text or json"},
    {"http-threads", "SLUICE_HTTP_THREADS", OPT_INT, O(http_threads), "0", "N",
     "HTTP worker threads (0: two per core, at least 4)"},
    {"max-connections", "SLUICE_MAX_CONNECTIONS", OPT_INT, O(max_connections), "1024", "N",
     "concurrent inbound HTTP connections"},
};
#define NOPTS (sizeof opts / sizeof opts[0])

void config_usage(FILE *out)
{
    fprintf(out, "Usage: sluice serve [flags]\n\n"
                 "Runs the Sluice server: HTTP API, console, delivery engines and alerting.\n"
                 "With no flags it runs on SQLite in ./sluice-data/.\n\nFlags (environment "
                 "variable, default):\n");
    for (size_t i = 0; i < NOPTS; i++) {
        const struct opt *o = &opts[i];
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(out, "  %-32s %s\n  %-32s (%s%s%s)\n", left, o->help, "", o->env,
                o->def ? ", default " : "", o->def ? o->def : "");
    }
    fprintf(out, "  %-32s %s\n", "-h, --help", "show this help");
}

static enum err parse_size(const char *s, int64_t *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v < 0)
        return ERR_INVALID;
    int64_t mult = 1;
    if (!strcasecmp(end, "") || !strcasecmp(end, "b"))
        mult = 1;
    else if (!strcasecmp(end, "kb") || !strcasecmp(end, "k"))
        mult = 1000;
    else if (!strcasecmp(end, "mb") || !strcasecmp(end, "m"))
        mult = 1000 * 1000;
    else if (!strcasecmp(end, "gb") || !strcasecmp(end, "g"))
        mult = 1000 * 1000 * 1000;
    else if (!strcasecmp(end, "kib"))
        mult = 1024;
    else if (!strcasecmp(end, "mib"))
        mult = 1024 * 1024;
    else if (!strcasecmp(end, "gib"))
        mult = 1024 * 1024 * 1024;
    else
        return ERR_INVALID;
    /* At most 1e15 bytes, checked after the unit: "1e15GiB" would not fit in an int64_t
     * (and converting it would be undefined). */
    double bytes = v * (double)mult;
    if (bytes > 1e15)
        return ERR_INVALID;
    *out = (int64_t)bytes;
    return ERR_OK;
}

/* Sets one option from text; writes a message to err and returns -1 on a bad value. */
static int set_opt(struct config *cfg, const struct opt *o, const char *val, const char *from,
                   FILE *err)
{
    char *base = (char *)cfg + o->off;
    switch (o->type) {
    case OPT_STR: {
        char **p = (char **)(void *)base;
        free(*p);
        *p = xstrdup(val);
        return 0;
    }
    case OPT_BOOL: {
        bool *p = (bool *)(void *)base;
        if (!strcmp(val, "1") || !strcasecmp(val, "true") || !strcasecmp(val, "yes"))
            *p = true;
        else if (!strcmp(val, "0") || !strcasecmp(val, "false") || !strcasecmp(val, "no"))
            *p = false;
        else
            goto bad;
        return 0;
    }
    case OPT_DURATION:
        if (duration_parse(val, (int64_t *)(void *)base) != ERR_OK)
            goto bad;
        return 0;
    case OPT_SIZE:
        if (parse_size(val, (int64_t *)(void *)base) != ERR_OK)
            goto bad;
        return 0;
    case OPT_INT: {
        char *end;
        errno = 0;
        long long v = strtoll(val, &end, 10);
        if (end == val || *end || v < 0 || errno == ERANGE || v > 1000000000LL)
            goto bad;
        *(int64_t *)(void *)base = v;
        return 0;
    }
    case OPT_DOUBLE: {
        char *end;
        double v = strtod(val, &end);
        if (end == val || *end || !isfinite(v) || v < 0 || v > 1e9)
            goto bad;
        *(double *)(void *)base = v;
        return 0;
    }
    }
bad:
    fprintf(err, "sluice: invalid value \"%s\" for --%s (from %s)\n", val, o->name, from);
    return -1;
}

static const struct opt *find_opt(const char *name, size_t len)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (strlen(opts[i].name) == len && !strncmp(opts[i].name, name, len))
            return &opts[i];
    return NULL;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static int load_file(struct config *cfg, const char *path, const bool *set, FILE *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(err, "sluice: cannot read config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq) {
            fprintf(err, "sluice: %s:%d: expected \"name = value\"\n", path, lineno);
            rc = -1;
            break;
        }
        *eq = '\0';
        char *name = trim(s), *val = trim(eq + 1);
        const struct opt *o = find_opt(name, strlen(name));
        if (!o || !strcmp(o->name, "config")) {
            fprintf(err, "sluice: %s:%d: unknown setting \"%s\"\n", path, lineno, name);
            rc = -1;
            break;
        }
        if (set[o - opts])
            continue; /* flag or environment wins */
        if (set_opt(cfg, o, val, path, err) < 0) {
            rc = -1;
            break;
        }
    }
    fclose(f);
    return rc;
}

int config_parse(struct config *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    memset(cfg, 0, sizeof *cfg);
    bool set[NOPTS] = {0};
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].def && set_opt(cfg, &opts[i], opts[i].def, "default", err) < 0)
            return -1;
    for (size_t i = 0; i < NOPTS; i++) {
        const char *v = getenv(opts[i].env);
        if (v && *v) {
            if (set_opt(cfg, &opts[i], v, opts[i].env, err) < 0)
                return -1;
            set[i] = true;
        }
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            config_usage(out);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(err, "sluice: unexpected argument \"%s\" (see sluice serve --help)\n", a);
            return -1;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const struct opt *o = find_opt(name, nlen);
        if (!o) {
            fprintf(err, "sluice: unknown flag \"--%.*s\" (see sluice serve --help)\n", (int)nlen,
                    name);
            return -1;
        }
        const char *val;
        if (eq)
            val = eq + 1;
        else if (o->type == OPT_BOOL)
            val = "true";
        else if (i + 1 < argc)
            val = argv[++i];
        else {
            fprintf(err, "sluice: flag --%s needs a value\n", o->name);
            return -1;
        }
        if (set_opt(cfg, o, val, "command line", err) < 0)
            return -1;
        set[o - opts] = true;
    }
    if (cfg->config_file && load_file(cfg, cfg->config_file, set, err) < 0)
        return -1;
    if (cfg->time_scale <= 0) {
        fprintf(err, "sluice: --time-scale must be greater than 0\n");
        return -1;
    }
    if (cfg->lease_ms < 1000) {
        fprintf(err, "sluice: --lease must be at least 1s\n");
        return -1;
    }
    if (cfg->webhook_max_connections < 1 || cfg->max_connections < 1) {
        fprintf(err, "sluice: connection limits must be at least 1\n");
        return -1;
    }
    if (cfg->smtp_url && strncasecmp(cfg->smtp_url, "smtp://", 7) != 0 &&
        strncasecmp(cfg->smtp_url, "smtps://", 8) != 0) {
        fprintf(err, "sluice: --smtp-url must start with smtp:// or smtps://\n");
        return -1;
    }
    if (cfg->smtp_ca_file && access(cfg->smtp_ca_file, R_OK) != 0) {
        fprintf(err, "sluice: --smtp-ca-file %s: %s\n", cfg->smtp_ca_file, strerror(errno));
        return -1;
    }
    if (!cfg->db)
        cfg->db = xasprintf("sqlite:%s/sluice.db", cfg->data_dir);
    if (!cfg->node_id) {
        char host[128] = "localhost";
        gethostname(host, sizeof host - 1);
        cfg->node_id = xasprintf("%s-%d", host, (int)getpid());
    }
    if (!cfg->public_url)
        cfg->public_url = xasprintf("http://%s", cfg->listen);
    if (cfg->http_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->http_threads = n > 2 ? 2 * n : 4;
    }
    static const char *const roles[] = {"api", "webhook", "s3", "alerts", "notify"};
    for (const char *p = cfg->roles; *p;) {
        size_t n = strcspn(p, ",");
        bool ok = false;
        for (size_t i = 0; i < 5; i++)
            ok |= strlen(roles[i]) == n && !strncmp(roles[i], p, n);
        if (!ok) {
            fprintf(err,
                    "sluice: unknown role \"%.*s\" in --roles (api,webhook,s3,alerts,notify)\n",
                    (int)n, p);
            return -1;
        }
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

void config_cleanup(struct config *cfg)
{
    for (size_t i = 0; i < NOPTS; i++)
        if (opts[i].type == OPT_STR) {
            char **p = (char **)(void *)((char *)cfg + opts[i].off);
            free(*p);
            *p = NULL;
        }
}

bool config_has_role(const struct config *cfg, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = cfg->roles; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, name, n))
            return true;
        p += len;
        if (*p == ',')
            p++;
    }
    return false;
}
