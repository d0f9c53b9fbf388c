/* Tests for store/db (the facade) on SQLite, and store_migrate. Each test works in its own
 * temporary directory and removes it (with the -wal and -shm files) at the end. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embed.h"
#include "core/xalloc.h"
#include "store/db.h"
#include "store/store.h"
#include "unit.h"

struct fixture {
    char *dir;
    char *url;
    struct db *db;
};

/* Opens a fresh SQLite database with table t; returns false (test failed) if it cannot. */
static bool setup(struct fixture *f)
{
    f->dir = unit_tmpdir();
    f->url = xasprintf("sqlite:%s/test.db", f->dir);
    f->db = NULL;
    char errmsg[256] = "";
    enum err rc = db_open(f->url, &f->db, errmsg, sizeof errmsg);
    if (rc != ERR_OK) {
        unit_fail(__FILE__, __LINE__, "db_open(%s) = %s: %s", f->url, err_name(rc), errmsg);
        return false;
    }
    rc = db_exec(f->db, "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,"
                        " n INTEGER, note TEXT)");
    if (rc != ERR_OK) {
        unit_fail(__FILE__, __LINE__, "create table: %s", db_errmsg(f->db));
        return false;
    }
    return true;
}

static void teardown(struct fixture *f)
{
    db_close(f->db);
    free(f->url);
    unit_rmdir(f->dir);
}

/* Opens a second connection to the fixture's database. */
static struct db *other(struct fixture *f)
{
    struct db *db = NULL;
    char errmsg[256];
    if (db_open(f->url, &db, errmsg, sizeof errmsg) != ERR_OK)
        unit_fail(__FILE__, __LINE__, "second db_open: %s", errmsg);
    return db;
}

static enum err insert(struct db *db, const char *name, int64_t n)
{
    struct db_stmt *st = db_stmt(db, "INSERT INTO t (name, n) VALUES (?, ?)");
    db_bind_text(st, 1, name);
    db_bind_int(st, 2, n);
    return db_run(st);
}

/* The number of rows of t, or -1. */
static int64_t count_rows(struct db *db)
{
    struct db_stmt *st = db_stmt(db, "SELECT COUNT(*) FROM t");
    int64_t n = db_next(st) == ERR_OK ? db_col_int(st, 0) : -1;
    db_release(db);
    return n;
}

static bool row_exists(struct db *db, const char *name)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM t WHERE name = ?");
    db_bind_text(st, 1, name);
    bool found = db_next(st) == ERR_OK;
    db_release(db);
    return found;
}

static void test_db_open(void)
{
    struct fixture f;
    if (setup(&f)) {
        ASSERT_EQ_INT(db_kind(f.db), DB_SQLITE);
        ASSERT_TRUE(!db_broken(f.db));
        ASSERT_EQ_ERR(db_ensure(f.db), ERR_OK);
    }
    teardown(&f);

    struct db *db = NULL;
    char errmsg[256] = "";
    ASSERT_EQ_ERR(db_open("mysql://x", &db, errmsg, sizeof errmsg), ERR_INVALID);
    ASSERT_TRUE(db == NULL);
    ASSERT_TRUE(errmsg[0] != '\0');
    errmsg[0] = '\0';
    ASSERT_EQ_ERR(db_open("sqlite:/nonexistent-dir/sub/x.db", &db, errmsg, sizeof errmsg),
                  ERR_STORAGE);
    ASSERT_TRUE(db == NULL);
    ASSERT_TRUE(strstr(errmsg, "/nonexistent-dir/sub/x.db") != NULL);
    db_close(NULL); /* free functions accept NULL */
}

static void test_db_bind_and_columns(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    struct db_stmt *st = db_stmt(f.db, "INSERT INTO t (name, n, note) VALUES (?, ?, ?)");
    db_bind_text(st, 1, "alpha");
    db_bind_int(st, 2, 9007199254740993LL); /* beyond a double's exact range */
    db_bind_text(st, 3, "caf\xc3\xa9 'quoted' \"x\"");
    ASSERT_EQ_ERR(db_run(st), ERR_OK);
    ASSERT_EQ_INT(db_changes(st), 1);

    /* strings are copied at bind time */
    char name[16];
    snprintf(name, sizeof name, "beta");
    st = db_stmt(f.db, "INSERT INTO t (name, n, note) VALUES (?, ?, ?)");
    db_bind_text(st, 1, name);
    db_bind_int(st, 2, -42);
    db_bind_null(st, 3);
    snprintf(name, sizeof name, "clobbered");
    ASSERT_EQ_ERR(db_run(st), ERR_OK);

    st = db_stmt(f.db, "INSERT INTO t (name, n, note) VALUES (?, ?, ?)");
    db_bind_text(st, 1, "gamma");
    db_bind_text(st, 2, NULL); /* NULL text binds SQL NULL */
    db_bind_text(st, 3, "");
    ASSERT_EQ_ERR(db_run(st), ERR_OK);

    st = db_stmt(f.db, "SELECT name, n, note FROM t ORDER BY id");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_STR(db_col_text(st, 0), "alpha");
    ASSERT_EQ_INT(db_col_int(st, 1), 9007199254740993LL);
    ASSERT_EQ_STR(db_col_text(st, 2), "caf\xc3\xa9 'quoted' \"x\"");
    ASSERT_TRUE(!db_col_null(st, 2));
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_STR(db_col_text(st, 0), "beta");
    ASSERT_EQ_INT(db_col_int(st, 1), -42);
    ASSERT_TRUE(db_col_null(st, 2));
    ASSERT_TRUE(db_col_text(st, 2) == NULL);
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_STR(db_col_text(st, 0), "gamma");
    ASSERT_TRUE(db_col_null(st, 1));
    ASSERT_EQ_STR(db_col_text(st, 2), ""); /* empty string is not NULL */
    ASSERT_TRUE(!db_col_null(st, 2));
    ASSERT_EQ_ERR(db_next(st), ERR_DONE);

    /* a WHERE with a bound parameter; the same statement again with another value */
    st = db_stmt(f.db, "SELECT n FROM t WHERE name = ?");
    db_bind_text(st, 1, "beta");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), -42);
    st = db_stmt(f.db, "SELECT n FROM t WHERE name = ?");
    db_bind_text(st, 1, "nobody");
    ASSERT_EQ_ERR(db_next(st), ERR_DONE);
    db_release(f.db);
    teardown(&f);
}

static void test_db_conflict_and_errors(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(insert(f.db, "dup", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "dup", 2), ERR_CONFLICT); /* UNIQUE */
    ASSERT_TRUE(strlen(db_errmsg(f.db)) > 0);
    struct db_stmt *st = db_stmt(f.db, "INSERT INTO t (id, name) VALUES (?, ?)");
    db_bind_int(st, 1, 1);
    db_bind_text(st, 2, "other");
    ASSERT_EQ_ERR(db_run(st), ERR_CONFLICT); /* PRIMARY KEY */
    ASSERT_EQ_ERR(db_exec(f.db, "INSERT INTO t (name) VALUES ('dup')"), ERR_CONFLICT);
    /* other constraint failures are storage errors, not conflicts */
    st = db_stmt(f.db, "INSERT INTO t (name) VALUES (?)");
    db_bind_null(st, 1);
    ASSERT_EQ_ERR(db_run(st), ERR_STORAGE);
    /* the connection still works after failures */
    ASSERT_EQ_ERR(insert(f.db, "after", 3), ERR_OK);
    ASSERT_EQ_INT(count_rows(f.db), 2);

    /* bad SQL: the statement exists but cannot run */
    st = db_stmt(f.db, "SELEKT nonsense");
    REQUIRE_TRUE(st != NULL);
    ASSERT_EQ_ERR(db_next(st), ERR_STORAGE);
    ASSERT_TRUE(strlen(db_errmsg(f.db)) > 0);
    ASSERT_EQ_ERR(db_exec(f.db, "SELEKT nonsense"), ERR_STORAGE);
    /* several statements in one db_exec */
    ASSERT_EQ_ERR(db_exec(f.db, "CREATE TABLE u (x INTEGER); INSERT INTO u VALUES (1);"
                                "INSERT INTO u VALUES (2);"),
                  ERR_OK);
    st = db_stmt(f.db, "SELECT SUM(x) FROM u");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), 3);
    db_release(f.db);
    teardown(&f);
}

static void test_db_changes(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(insert(f.db, "a", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "b", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "c", 2), ERR_OK);
    struct db_stmt *st = db_stmt(f.db, "UPDATE t SET note = ? WHERE n = ?");
    db_bind_text(st, 1, "x");
    db_bind_int(st, 2, 1);
    ASSERT_EQ_ERR(db_run(st), ERR_OK);
    ASSERT_EQ_INT(db_changes(st), 2);
    st = db_stmt(f.db, "UPDATE t SET note = ? WHERE n = ?");
    db_bind_text(st, 1, "x");
    db_bind_int(st, 2, 99);
    ASSERT_EQ_ERR(db_run(st), ERR_OK);
    ASSERT_EQ_INT(db_changes(st), 0);
    st = db_stmt(f.db, "DELETE FROM t");
    ASSERT_EQ_ERR(db_run(st), ERR_OK);
    ASSERT_EQ_INT(db_changes(st), 3);
    teardown(&f);
}

/* Runs a db_query with the given optional filters; returns the names found, comma-joined. */
static void query_names(struct db *db, const char *note, const char *name_after, int64_t limit,
                        char *out, size_t n)
{
    struct db_query q;
    db_query_init(&q, "SELECT name FROM t WHERE n >= ?");
    db_query_arg(&q, "0");
    db_query_where(&q, " AND note = ?", note);
    db_query_where(&q, " AND name > ?", name_after);
    struct db_stmt *st;
    out[0] = '\0';
    if (db_query_stmt(db, &q, " ORDER BY name LIMIT ?", limit, &st) != ERR_OK) {
        snprintf(out, n, "(error)");
        return;
    }
    enum err rc;
    while ((rc = db_next(st)) == ERR_OK)
        snprintf(out + strlen(out), n - strlen(out), "%s%s", out[0] ? "," : "", db_col_text(st, 0));
    if (rc != ERR_DONE)
        snprintf(out, n, "(error)");
}

/* The filters that are NULL leave the SQL and the binds; the others bind in order. */
static void test_db_query_optional_filters(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(insert(f.db, "a", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "b", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "c", 2), ERR_OK);
    struct db_stmt *st = db_stmt(f.db, "UPDATE t SET note = 'x' WHERE name <> 'b'");
    ASSERT_EQ_ERR(db_run(st), ERR_OK);
    char got[64];
    query_names(f.db, NULL, NULL, 10, got, sizeof got);
    ASSERT_EQ_STR(got, "a,b,c");
    query_names(f.db, "x", NULL, 10, got, sizeof got);
    ASSERT_EQ_STR(got, "a,c");
    query_names(f.db, NULL, "a", 10, got, sizeof got);
    ASSERT_EQ_STR(got, "b,c");
    query_names(f.db, "x", "a", 10, got, sizeof got);
    ASSERT_EQ_STR(got, "c");
    query_names(f.db, NULL, NULL, 2, got, sizeof got);
    ASSERT_EQ_STR(got, "a,b");
    db_release(f.db);
    teardown(&f);
}

/* Integer values bind as integers, in order with the text ones. */
static void test_db_query_int_values(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(insert(f.db, "a", 1), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "b", 2), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "c", 3), ERR_OK);
    struct db_query q;
    db_query_init(&q, "SELECT name FROM t WHERE name <> ?");
    db_query_arg(&q, "c");
    db_query_where_int(&q, " AND n >= ?", 2);
    db_query_sql(&q, " AND n IS NOT NULL");
    struct db_stmt *st;
    REQUIRE_TRUE(db_query_stmt(f.db, &q, " ORDER BY name LIMIT ?", 10, &st) == ERR_OK);
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_STR(db_col_text(st, 0), "b");
    ASSERT_EQ_ERR(db_next(st), ERR_DONE);
    db_release(f.db);
    teardown(&f);
}

/* A query that needs more values than the builder holds fails instead of running without
 * some of its conditions (before, the 17th value was dropped and the query widened). */
static void test_db_query_overflow_fails(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(insert(f.db, "a", 1), ERR_OK);
    struct db_query q;
    db_query_init(&q, "SELECT name FROM t WHERE 1 = 1");
    for (int i = 0; i < DB_QUERY_MAX_ARGS; i++)
        db_query_where(&q, " AND name <> ?", "zz");
    struct db_stmt *st;
    ASSERT_EQ_ERR(db_query_stmt(f.db, &q, " LIMIT ?", 10, &st), ERR_OK);
    db_release(f.db);
    db_query_init(&q, "SELECT name FROM t WHERE 1 = 1");
    for (int i = 0; i < DB_QUERY_MAX_ARGS; i++)
        db_query_where(&q, " AND name <> ?", "zz");
    db_query_where(&q, " AND name = ?", "nothing"); /* the 17th: must not be dropped */
    ASSERT_EQ_ERR(db_query_stmt(f.db, &q, " LIMIT ?", 10, &st), ERR_INTERNAL);
    ASSERT_TRUE(st == NULL);
    /* the same for time bounds past the builder's room */
    db_query_init(&q, "SELECT name FROM t WHERE id >= ?");
    db_query_arg(&q, "");
    for (int i = 0; i <= DB_QUERY_MAX_FLOORS; i++)
        db_query_since(&q, "name", "x", 1000);
    ASSERT_EQ_ERR(db_query_stmt(f.db, &q, " LIMIT ?", 10, &st), ERR_INTERNAL);
    teardown(&f);
}

static void test_db_statement_cache(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    char a[128], b[128];
    snprintf(a, sizeof a, "SELECT name FROM t WHERE %s = ?", "n");
    snprintf(b, sizeof b, "SELECT name FROM t WHERE %c = ?", 'n');
    ASSERT_TRUE(!strcmp(a, b)); /* equal text in two different buffers */
    struct db_stmt *s1 = db_stmt(f.db, a);
    struct db_stmt *s2 = db_stmt(f.db, b);
    ASSERT_TRUE(s1 == s2);
    char *heap = xstrdup(a);
    ASSERT_TRUE(db_stmt(f.db, heap) == s1);
    free(heap);
    struct db_stmt *s3 = db_stmt(f.db, "SELECT name FROM t WHERE n = ? ");
    ASSERT_TRUE(s3 != s1);
    /* many distinct statements share the buckets without mixing up */
    struct db_stmt *many[600];
    for (int i = 0; i < 600; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        many[i] = db_stmt(f.db, sql);
    }
    int ok = 1;
    for (int i = 0; i < 600; i++) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT %d", i);
        struct db_stmt *st = db_stmt(f.db, sql);
        ok &= st == many[i] && db_next(st) == ERR_OK && db_col_int(st, 0) == i;
    }
    ASSERT_TRUE(ok);
    db_release(f.db);

    /* db_stmt hands the statement back reset and without bindings */
    struct db_stmt *st = db_stmt(f.db, "SELECT ? IS NULL");
    db_bind_int(st, 1, 5);
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), 0);
    st = db_stmt(f.db, "SELECT ? IS NULL");
    ASSERT_EQ_ERR(db_next(st), ERR_OK); /* executes afresh, not "no more rows" */
    ASSERT_EQ_INT(db_col_int(st, 0), 1);
    db_release(f.db);
    teardown(&f);
}

static void test_db_transactions(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    struct db *reader = other(&f);
    REQUIRE_TRUE(reader != NULL);
    ASSERT_EQ_ERR(db_begin(f.db), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "uncommitted", 1), ERR_OK);
    ASSERT_EQ_INT(count_rows(reader), 0); /* not visible before commit */
    db_rollback(f.db);
    ASSERT_EQ_INT(count_rows(f.db), 0);

    ASSERT_EQ_ERR(db_begin(f.db), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "kept", 1), ERR_OK);
    ASSERT_EQ_ERR(db_commit(f.db), ERR_OK);
    ASSERT_EQ_INT(count_rows(reader), 1);
    db_close(reader);
    teardown(&f);
}

static void test_db_savepoint_rollback(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(db_begin(f.db), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "outer", 1), ERR_OK);

    ASSERT_EQ_ERR(db_savepoint(f.db), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "inner-undone", 2), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "outer", 3), ERR_CONFLICT); /* the job fails... */
    db_rollback_savepoint(f.db);                           /* ...and rolls back alone */

    ASSERT_EQ_ERR(db_savepoint(f.db), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "inner-kept", 4), ERR_OK);
    ASSERT_EQ_ERR(db_release_savepoint(f.db), ERR_OK);

    ASSERT_EQ_ERR(insert(f.db, "after", 5), ERR_OK); /* the transaction is still open */
    ASSERT_EQ_ERR(db_commit(f.db), ERR_OK);

    ASSERT_TRUE(row_exists(f.db, "outer"));
    ASSERT_TRUE(!row_exists(f.db, "inner-undone"));
    ASSERT_TRUE(row_exists(f.db, "inner-kept"));
    ASSERT_TRUE(row_exists(f.db, "after"));
    ASSERT_EQ_INT(count_rows(f.db), 3);

    /* and what a second connection sees after the commit */
    struct db *r = other(&f);
    if (r) {
        ASSERT_TRUE(!row_exists(r, "inner-undone"));
        ASSERT_EQ_INT(count_rows(r), 3);
        db_close(r);
    }
    teardown(&f);
}

static void test_db_release_half_read_returning(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    ASSERT_EQ_ERR(db_begin(f.db), ERR_OK);
    struct db_stmt *st =
        db_stmt(f.db, "INSERT INTO t (name, n) VALUES ('r1', 1), ('r2', 2), ('r3', 3) "
                      "RETURNING id, name");
    ASSERT_EQ_ERR(db_next(st), ERR_OK); /* read one row of three, then stop */
    ASSERT_TRUE(db_col_text(st, 1) != NULL);
    db_release(f.db);
    ASSERT_EQ_ERR(db_exec(f.db, "COMMIT"), ERR_OK);

    /* db_commit releases by itself */
    ASSERT_EQ_ERR(db_begin(f.db), ERR_OK);
    st = db_stmt(f.db, "INSERT INTO t (name, n) VALUES ('s1', 1), ('s2', 2) RETURNING id");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_ERR(db_commit(f.db), ERR_OK);

    struct db *r = other(&f);
    if (r) {
        ASSERT_EQ_INT(count_rows(r), 5); /* every row of both statements is durable */
        db_close(r);
    }
    /* the statement can run again after the release */
    st = db_stmt(f.db, "SELECT COUNT(*) FROM t");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), 5);
    db_release(f.db);
    teardown(&f);
}

static void test_db_release_ends_snapshot(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    struct db *reader = other(&f);
    REQUIRE_TRUE(reader != NULL);
    ASSERT_EQ_ERR(insert(f.db, "one", 1), ERR_OK);
    /* a half-read SELECT keeps the reader's snapshot open... */
    struct db_stmt *st = db_stmt(reader, "SELECT name FROM t");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "two", 2), ERR_OK);
    struct db_stmt *cnt = db_stmt(reader, "SELECT COUNT(*) FROM t");
    ASSERT_EQ_ERR(db_next(cnt), ERR_OK);
    ASSERT_EQ_INT(db_col_int(cnt, 0), 1);
    /* ...until db_release */
    db_release(reader);
    ASSERT_EQ_INT(count_rows(reader), 2);
    db_close(reader);
    teardown(&f);
}

static bool table_exists(struct db *db, const char *name)
{
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                     "AND name = ?");
    db_bind_text(st, 1, name);
    bool found = db_next(st) == ERR_OK;
    db_release(db);
    return found;
}

static int64_t migrations_applied(struct db *db)
{
    struct db_stmt *st = db_stmt(db, "SELECT COUNT(*) FROM schema_migrations");
    int64_t n = db_next(st) == ERR_OK ? db_col_int(st, 0) : -1;
    db_release(db);
    return n;
}

/* The SQLite migrations embedded in this build. */
static int64_t sqlite_migrations(void)
{
    int64_t n = 0;
    for (const struct embedded_file *e = embedded_files; e->name; e++)
        if (!strncmp(e->name, "src/store/migrations/", 21) &&
            strstr(e->name, ".sqlite.sql") == e->name + strlen(e->name) - 11)
            n++;
    return n;
}

/* A migration that has not run yet runs even when a higher number already has (branches
 * merged in another order than they were numbered). */
static void test_store_migrate_applies_a_lower_missing_version(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    char errmsg[256] = "";
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    /* undo 006 (it only adds two columns) and record a later version as applied */
    ASSERT_EQ_ERR(db_exec(f.db, "ALTER TABLE integrations DROP COLUMN incarnation; "
                                "ALTER TABLE integration_logs DROP COLUMN incarnation; "
                                "DELETE FROM schema_migrations WHERE version = 6; "
                                "INSERT INTO schema_migrations VALUES (999, 0)"),
                  ERR_OK);
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    ASSERT_EQ_STR(errmsg, "");
    struct db_stmt *st = db_stmt(f.db, "SELECT incarnation FROM integrations LIMIT 1");
    ASSERT_EQ_ERR(db_next(st), ERR_DONE); /* the column is back (no rows) */
    st = db_stmt(f.db, "SELECT COUNT(*) FROM schema_migrations WHERE version = 6");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), 1);
    db_release(f.db);
    teardown(&f);
}

static void test_store_migrate(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    char errmsg[256] = "";
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    ASSERT_EQ_STR(errmsg, "");
    ASSERT_TRUE(table_exists(f.db, "events"));
    ASSERT_TRUE(table_exists(f.db, "settings"));
    ASSERT_TRUE(table_exists(f.db, "schema_migrations"));
    int64_t applied = migrations_applied(f.db);
    ASSERT_TRUE(applied >= 1);
    ASSERT_EQ_INT(applied, sqlite_migrations()); /* every one of this build, once */
    struct db_stmt *st = db_stmt(f.db, "SELECT MIN(version) FROM schema_migrations");
    ASSERT_EQ_ERR(db_next(st), ERR_OK);
    ASSERT_EQ_INT(db_col_int(st, 0), 1);
    db_release(f.db);

    /* twice is a no-op */
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    ASSERT_EQ_STR(errmsg, "");
    ASSERT_EQ_INT(migrations_applied(f.db), applied);
    ASSERT_TRUE(table_exists(f.db, "events"));

    /* a fresh connection to the migrated database sees everything, and migrating from it
     * is a no-op as well */
    struct db *again = other(&f);
    if (again) {
        ASSERT_EQ_ERR(store_migrate(again, errmsg, sizeof errmsg), ERR_OK);
        ASSERT_EQ_INT(migrations_applied(again), applied);
        db_close(again);
    }
    teardown(&f);
}

/* store_migrate is done with the connection when it returns: it must not leave a statement
 * holding a read snapshot (db.h: release when done), or the caller goes on reading the
 * database as it was before the migration ran. */
static void test_store_migrate_leaves_no_snapshot(void)
{
    struct fixture f;
    if (!setup(&f)) {
        teardown(&f);
        return;
    }
    char errmsg[256] = "";
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK); /* nothing to apply */
    struct db *w = other(&f);
    REQUIRE_TRUE(w != NULL);
    ASSERT_EQ_ERR(insert(w, "from-another-connection", 1), ERR_OK);
    ASSERT_TRUE(row_exists(f.db, "from-another-connection"));
    /* and a write on the migrated connection is visible to others at once */
    ASSERT_EQ_ERR(store_migrate(f.db, errmsg, sizeof errmsg), ERR_OK);
    ASSERT_EQ_ERR(insert(f.db, "autocommitted", 2), ERR_OK);
    ASSERT_TRUE(row_exists(w, "autocommitted"));
    db_close(w);
    teardown(&f);
}

void unit_db(void)
{
    RUN(test_db_open);
    RUN(test_db_bind_and_columns);
    RUN(test_db_conflict_and_errors);
    RUN(test_db_changes);
    RUN(test_db_statement_cache);
    RUN(test_db_transactions);
    RUN(test_db_savepoint_rollback);
    RUN(test_db_release_half_read_returning);
    RUN(test_db_release_ends_snapshot);
    RUN(test_db_query_optional_filters);
    RUN(test_db_query_int_values);
    RUN(test_db_query_overflow_fails);
    RUN(test_store_migrate);
    RUN(test_store_migrate_applies_a_lower_missing_version);
    RUN(test_store_migrate_leaves_no_snapshot);
}
