/* Tests for core/config: defaults, flags, environment and config-file precedence, errors.
 * The environment is process-wide: each test clears every SLUICE_* variable first and unsets
 * what it set before returning. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/xalloc.h"
#include "unit.h"

extern char **environ;

static void clear_sluice_env(void)
{
    for (;;) {
        char *name = NULL;
        for (char **e = environ; e && *e; e++)
            if (!strncmp(*e, "SLUICE_", 7)) {
                name = xstrndup(*e, strcspn(*e, "="));
                break;
            }
        if (!name)
            return;
        unsetenv(name);
        free(name);
    }
}

/* Runs config_parse on a NULL-terminated argument list; *out_text and *err_text receive
 * what it printed (malloc'd, caller frees). */
static int parse(struct config *cfg, const char *const *args, char **out_text, char **err_text)
{
    int argc = 0;
    while (args[argc])
        argc++;
    char **argv = xcalloc((size_t)argc + 1, sizeof *argv);
    for (int i = 0; i < argc; i++)
        argv[i] = xstrdup(args[i]);
    size_t olen = 0, elen = 0;
    *out_text = NULL;
    *err_text = NULL;
    FILE *out = open_memstream(out_text, &olen);
    FILE *err = open_memstream(err_text, &elen);
    int rc = config_parse(cfg, argc, argv, out, err);
    fclose(out);
    fclose(err);
    for (int i = 0; i < argc; i++)
        free(argv[i]);
    free(argv);
    return rc;
}

/* Expects config_parse(args) to fail with a message containing want. */
static void parse_fails(const char *const *args, const char *want, const char *file, int line)
{
    struct config cfg;
    char *out, *err;
    int rc = parse(&cfg, args, &out, &err);
    if (rc != -1)
        unit_fail(file, line, "config_parse(%s ...) = %d, want -1", args[0], rc);
    else if (!strstr(err, want))
        unit_fail(file, line, "config_parse(%s ...): message \"%s\" lacks \"%s\"", args[0], err,
                  want);
    else if (strchr(err, '\n') != err + strlen(err) - 1)
        unit_fail(file, line, "config_parse(%s ...): message is not one line: \"%s\"", args[0],
                  err);
    config_cleanup(&cfg);
    free(out);
    free(err);
}
#define PARSE_FAILS(want, ...)                                                                     \
    parse_fails((const char *const[]){__VA_ARGS__, NULL}, (want), __FILE__, __LINE__)

static void test_config_defaults(void)
{
    clear_sluice_env();
    struct config cfg;
    char *out, *err;
    static const char *const none[] = {NULL};
    ASSERT_EQ_INT(parse(&cfg, none, &out, &err), 0);
    ASSERT_EQ_STR(err, "");
    ASSERT_EQ_STR(cfg.listen, "127.0.0.1:8080");
    ASSERT_EQ_STR(cfg.data_dir, "./sluice-data");
    ASSERT_EQ_STR(cfg.db, "sqlite:./sluice-data/sluice.db");
    ASSERT_TRUE(cfg.admin_token == NULL);
    ASSERT_TRUE(cfg.master_key_file == NULL);
    ASSERT_TRUE(cfg.config_file == NULL);
    ASSERT_EQ_INT(cfg.lease_ms, 30000);
    ASSERT_EQ_INT(cfg.webhook_timeout_ms, 15000);
    ASSERT_EQ_INT(cfg.webhook_max_connections, 256);
    ASSERT_TRUE(cfg.rate_limit == 0);
    ASSERT_EQ_STR(cfg.public_url, "http://127.0.0.1:8080");
    ASSERT_TRUE(cfg.smtp_url == NULL);
    ASSERT_EQ_INT(cfg.s3_batch_max_bytes, 50000000);
    ASSERT_EQ_INT(cfg.s3_batch_max_age_ms, 300000);
    ASSERT_EQ_INT(cfg.retention_events_ms, 14 * 86400000LL);
    ASSERT_EQ_INT(cfg.retention_deliveries_ms, 30 * 86400000LL);
    ASSERT_EQ_INT(cfg.retention_alerts_ms, 90 * 86400000LL);
    ASSERT_TRUE(!cfg.allow_private_targets);
    ASSERT_TRUE(cfg.time_scale == 1.0);
    ASSERT_EQ_STR(cfg.roles, "api,webhook,s3,alerts,notify");
    ASSERT_TRUE(cfg.node_id != NULL && *cfg.node_id);
    ASSERT_EQ_STR(cfg.log_level, "info");
    ASSERT_EQ_STR(cfg.log_format, "text");
    ASSERT_TRUE(cfg.http_threads >= 4);
    ASSERT_EQ_INT(cfg.max_connections, 1024);
    static const char *const roles[] = {"api", "webhook", "s3", "alerts", "notify"};
    for (size_t i = 0; i < 5; i++)
        ASSERT_TRUE(config_has_role(&cfg, roles[i]));
    ASSERT_TRUE(!config_has_role(&cfg, "web"));
    ASSERT_TRUE(!config_has_role(&cfg, "apis"));
    config_cleanup(&cfg);
    free(out);
    free(err);
}

static void test_config_flags(void)
{
    clear_sluice_env();
    struct config cfg;
    char *out, *err;
    static const char *const args[] = {
        "--listen=:9090",
        "--data-dir",
        "/tmp/sluice-x",
        "--lease=45s",
        "--webhook-timeout",
        "2s",
        "--allow-private-targets",
        "--time-scale",
        "60",
        "--s3-batch-max-bytes=1MiB",
        "--roles=api,s3",
        "--rate-limit=2.5",
        "--http-threads=8",
        "--node-id",
        "node-a",
        "--admin-token=t0ken",
        "--retention-events=1h30m",
        NULL,
    };
    ASSERT_EQ_INT(parse(&cfg, args, &out, &err), 0);
    ASSERT_EQ_STR(err, "");
    ASSERT_EQ_STR(cfg.listen, ":9090");
    ASSERT_EQ_STR(cfg.data_dir, "/tmp/sluice-x");
    ASSERT_EQ_STR(cfg.db, "sqlite:/tmp/sluice-x/sluice.db"); /* follows --data-dir */
    ASSERT_EQ_STR(cfg.public_url, "http://:9090");
    ASSERT_EQ_INT(cfg.lease_ms, 45000);
    ASSERT_EQ_INT(cfg.webhook_timeout_ms, 2000);
    ASSERT_TRUE(cfg.allow_private_targets);
    ASSERT_TRUE(cfg.time_scale == 60.0);
    ASSERT_EQ_INT(cfg.s3_batch_max_bytes, 1048576);
    ASSERT_EQ_STR(cfg.roles, "api,s3");
    ASSERT_TRUE(config_has_role(&cfg, "s3"));
    ASSERT_TRUE(!config_has_role(&cfg, "webhook"));
    ASSERT_TRUE(cfg.rate_limit == 2.5);
    ASSERT_EQ_INT(cfg.http_threads, 8);
    ASSERT_EQ_STR(cfg.node_id, "node-a");
    ASSERT_EQ_STR(cfg.admin_token, "t0ken");
    ASSERT_EQ_INT(cfg.retention_events_ms, 5400000);
    config_cleanup(&cfg);
    ASSERT_TRUE(cfg.listen == NULL);
    free(out);
    free(err);

    /* the last of a repeated flag wins; bool flags take =false */
    static const char *const again[] = {"--listen=:1", "--listen=:2",
                                        "--allow-private-targets=false", "--db=sqlite:/x.db", NULL};
    ASSERT_EQ_INT(parse(&cfg, again, &out, &err), 0);
    ASSERT_EQ_STR(cfg.listen, ":2");
    ASSERT_TRUE(!cfg.allow_private_targets);
    ASSERT_EQ_STR(cfg.db, "sqlite:/x.db");
    config_cleanup(&cfg);
    free(out);
    free(err);
}

static void test_config_env_precedence(void)
{
    clear_sluice_env();
    setenv("SLUICE_LISTEN", ":7000", 1);
    setenv("SLUICE_LEASE", "1m", 1);
    setenv("SLUICE_ALLOW_PRIVATE_TARGETS", "yes", 1);
    setenv("SLUICE_LOG_LEVEL", "", 1); /* empty counts as unset */
    struct config cfg;
    char *out, *err;
    static const char *const none[] = {NULL};
    ASSERT_EQ_INT(parse(&cfg, none, &out, &err), 0);
    ASSERT_EQ_STR(cfg.listen, ":7000");
    ASSERT_EQ_INT(cfg.lease_ms, 60000);
    ASSERT_TRUE(cfg.allow_private_targets);
    ASSERT_EQ_STR(cfg.log_level, "info");
    config_cleanup(&cfg);
    free(out);
    free(err);

    static const char *const args[] = {"--listen", ":9000", NULL};
    ASSERT_EQ_INT(parse(&cfg, args, &out, &err), 0);
    ASSERT_EQ_STR(cfg.listen, ":9000"); /* the flag beats the environment */
    ASSERT_EQ_INT(cfg.lease_ms, 60000);
    config_cleanup(&cfg);
    free(out);
    free(err);

    /* a bad environment value is reported with the variable's name */
    setenv("SLUICE_LEASE", "soon", 1);
    PARSE_FAILS("SLUICE_LEASE", "--listen=:1");
    clear_sluice_env();
}

static void test_config_file_precedence(void)
{
    clear_sluice_env();
    char *dir = unit_tmpdir();
    char *path = xasprintf("%s/sluice.conf", dir);
    FILE *f = fopen(path, "w");
    REQUIRE_TRUE(f != NULL);
    fputs("# comment\n\nlisten = :6000\nlease = 2m\n  log-level=debug  \nsmtp-from = a@b.c\n", f);
    fclose(f);
    setenv("SLUICE_LEASE", "1m", 1);
    char *flag = xasprintf("--config=%s", path);
    const char *const args[] = {flag, "--log-level", "warn", NULL};
    struct config cfg;
    char *out, *err;
    ASSERT_EQ_INT(parse(&cfg, args, &out, &err), 0);
    ASSERT_EQ_STR(err, "");
    ASSERT_EQ_STR(cfg.listen, ":6000");    /* file over default */
    ASSERT_EQ_INT(cfg.lease_ms, 60000);    /* environment over file */
    ASSERT_EQ_STR(cfg.log_level, "warn");  /* flag over file */
    ASSERT_EQ_STR(cfg.smtp_from, "a@b.c"); /* values are trimmed */
    config_cleanup(&cfg);
    free(out);
    free(err);
    unsetenv("SLUICE_LEASE");

    f = fopen(path, "w");
    REQUIRE_TRUE(f != NULL);
    fputs("bogus-setting = 1\n", f);
    fclose(f);
    PARSE_FAILS("bogus-setting", flag);

    char *missing = xasprintf("--config=%s/nope.conf", dir);
    PARSE_FAILS("nope.conf", missing);
    free(missing);
    free(flag);
    free(path);
    unit_rmdir(dir);
}

static void test_config_errors(void)
{
    clear_sluice_env();
    PARSE_FAILS("--bogus", "--bogus=1");
    PARSE_FAILS("--bogus", "--listen=:1", "--bogus");
    PARSE_FAILS("--lease", "--lease=abc");   /* invalid duration */
    PARSE_FAILS("--lease", "--lease", "10"); /* a duration needs its unit */
    PARSE_FAILS("--lease", "--lease=500ms"); /* below the minimum */
    PARSE_FAILS("--listen", "--listen");     /* missing value */
    PARSE_FAILS("positional", "positional");
    PARSE_FAILS("--time-scale", "--time-scale=0");
    PARSE_FAILS("--time-scale", "--time-scale=-3");
    PARSE_FAILS("--time-scale", "--time-scale=fast");
    PARSE_FAILS("--allow-private-targets", "--allow-private-targets=maybe");
    PARSE_FAILS("--max-connections", "--max-connections=-1");
    PARSE_FAILS("--max-connections", "--max-connections=12x");
    PARSE_FAILS("connection", "--webhook-max-connections=0");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=10XB");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=-5MB");
    PARSE_FAILS("frontend", "--roles=api,frontend");
    PARSE_FAILS("role", "--roles=api,,s3");
    PARSE_FAILS("smtp://", "--smtp-url=http://mail.example:25");
    PARSE_FAILS("/nonexistent/ca.pem", "--smtp-ca-file=/nonexistent/ca.pem");
}

/* "On a bad value writes a one-line message to err and returns -1": strtod also accepts
 * "nan" and "inf", which are no valid scale, rate or size. */
static void test_config_rejects_non_finite(void)
{
    clear_sluice_env();
    PARSE_FAILS("--time-scale", "--time-scale=nan");
    PARSE_FAILS("--rate-limit", "--rate-limit=nan");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=nan");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=infMB");
}

/* Sizes stop at 1e15 bytes after the unit is applied: "1e15GiB" once converted a double past
 * INT64_MAX to an integer (undefined behaviour; found by tests/fuzz/fuzz_config). */
static void test_config_size_limit(void)
{
    clear_sluice_env();
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=1e15GiB");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=1e13KB");
    PARSE_FAILS("--s3-batch-max-bytes", "--s3-batch-max-bytes=9.3e18");
    struct config cfg;
    char *out, *err;
    static const char *const ok[] = {"--s3-batch-max-bytes=1e15", NULL};
    ASSERT_EQ_INT(parse(&cfg, ok, &out, &err), 0);
    ASSERT_EQ_INT(cfg.s3_batch_max_bytes, 1000000000000000LL);
    config_cleanup(&cfg);
    free(out);
    free(err);
    static const char *const gib[] = {"--s3-batch-max-bytes=2GiB", NULL};
    ASSERT_EQ_INT(parse(&cfg, gib, &out, &err), 0);
    ASSERT_EQ_INT(cfg.s3_batch_max_bytes, 2LL * 1024 * 1024 * 1024);
    config_cleanup(&cfg);
    free(out);
    free(err);
}

static void test_config_help(void)
{
    clear_sluice_env();
    struct config cfg;
    char *out, *err;
    static const char *const args[] = {"--listen=:1", "--help", NULL};
    ASSERT_EQ_INT(parse(&cfg, args, &out, &err), 1);
    ASSERT_TRUE(strstr(out, "--listen") != NULL);
    ASSERT_TRUE(strstr(out, "SLUICE_LISTEN") != NULL);
    ASSERT_TRUE(strstr(out, "--time-scale") != NULL);
    ASSERT_EQ_STR(err, "");
    config_cleanup(&cfg);
    free(out);
    free(err);
    static const char *const h[] = {"-h", NULL};
    ASSERT_EQ_INT(parse(&cfg, h, &out, &err), 1);
    config_cleanup(&cfg);
    free(out);
    free(err);
}

void unit_config(void)
{
    RUN(test_config_defaults);
    RUN(test_config_flags);
    RUN(test_config_env_precedence);
    RUN(test_config_file_precedence);
    RUN(test_config_errors);
    RUN(test_config_rejects_non_finite);
    RUN(test_config_size_limit);
    RUN(test_config_help);
}
