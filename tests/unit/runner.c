/* The unit-test runner: runs every module's suite, or only the tests whose "suite.test" name
 * contains the filter given as the argument, and ends with the line "N passed, N failed"
 * that scripts/test.sh reads. Exits non-zero when a test failed (or none matched).
 * Single-threaded: the current test's state lives in globals. */
#include <dirent.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/log.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/store.h"
#include "unit.h"

static const struct {
    const char *name;
    void (*run)(void);
} suites[] = {
    {"alert", unit_alert},     {"buf", unit_buf},
    {"catalog", unit_catalog}, {"config", unit_config},
    {"crypto", unit_crypto},   {"db", unit_db},
    {"deliver", unit_deliver}, {"id", unit_id},
    {"json", unit_json},       {"list", unit_list},
    {"metrics", unit_metrics}, {"retry", unit_retry},
    {"stream", unit_stream},   {"timeutil", unit_timeutil},
};

static const char *g_filter;
static const char *g_suite;
static const char *g_test;
static bool g_verbose;
static bool g_failed;
static int g_passed, g_nfailed;

void unit_run(const char *name, void (*fn)(void))
{
    char full[256];
    snprintf(full, sizeof full, "%s.%s", g_suite, name);
    if (g_filter && !strstr(full, g_filter))
        return;
    g_test = full;
    g_failed = false;
    fn();
    if (g_failed) {
        g_nfailed++;
        printf("FAIL %s\n", full);
    } else {
        g_passed++;
        if (g_verbose)
            printf("ok   %s\n", full);
    }
    fflush(stdout);
    g_test = NULL;
}

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    g_failed = true;
    printf("  %s:%d: [%s] ", file, line, g_test ? g_test : "?");
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

bool unit_eq_str(const char *file, int line, const char *aexpr, const char *bexpr, const char *a,
                 const char *b)
{
    if (a == b || (a && b && !strcmp(a, b)))
        return true;
    unit_fail(file, line, "ASSERT_EQ_STR(%s, %s): %s%s%s != %s%s%s", aexpr, bexpr, a ? "\"" : "",
              a ? a : "NULL", a ? "\"" : "", b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
    return false;
}

struct db *unit_db_open(char **dir)
{
    *dir = unit_tmpdir();
    char *url = xasprintf("sqlite:%s/test.db", *dir);
    char errmsg[256] = "";
    struct db *db = NULL;
    enum err rc = db_open(url, &db, errmsg, sizeof errmsg);
    free(url);
    if (rc == ERR_OK)
        rc = store_migrate(db, errmsg, sizeof errmsg);
    if (rc == ERR_OK)
        rc = db_exec(db, "INSERT INTO tenants (id, name, created_at) VALUES ('acme', 'Acme', "
                         "0), ('globex', 'Globex', 0)");
    if (rc != ERR_OK) {
        unit_fail(__FILE__, __LINE__, "unit_db_open: %s %s", errmsg, db ? db_errmsg(db) : "");
        db_close(db);
        unit_rmdir(*dir);
        *dir = NULL;
        return NULL;
    }
    return db;
}

long long unit_db_int(struct db *db, const char *sql, const char *arg)
{
    struct db_stmt *st = db_stmt(db, sql);
    if (arg)
        db_bind_text(st, 1, arg);
    long long n = db_next(st) == ERR_OK ? (long long)db_col_int(st, 0) : -1;
    db_release(db);
    return n;
}

char *unit_tmpdir(void)
{
    char *dir = xstrdup("/tmp/sluice-unit-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        abort();
    }
    return dir;
}

void unit_rmdir(char *dir)
{
    if (!dir)
        return;
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char *p = xasprintf("%s/%s", dir, e->d_name);
            unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-v")) {
            g_verbose = true;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("usage: %s [-v] [FILTER]\n"
                   "Runs the unit tests whose \"suite.test\" name contains FILTER (all by "
                   "default); -v lists passing tests too.\n",
                   argv[0]);
            return 0;
        } else {
            g_filter = argv[i];
        }
    }
    log_configure("error", "text"); /* migrations log at info; keep the output to failures */
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        g_suite = suites[i].name;
        suites[i].run();
    }
    if (g_passed + g_nfailed == 0)
        fprintf(stderr, "no test matches \"%s\"\n", g_filter ? g_filter : "");
    printf("%d passed, %d failed\n", g_passed, g_nfailed);
    return g_nfailed > 0 || g_passed == 0 ? 1 : 0;
}
