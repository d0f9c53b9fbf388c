/* The unit-test framework: a few assertion macros and one suite function per module.
 *
 * Each tests/unit/test_<module>.c keeps its tests static and exposes one
 * `void unit_<module>(void)` that calls RUN(test_fn) for each of them; runner.c calls every
 * suite. A failed assertion prints file:line and both values, marks the current test failed
 * and carries on (so one run reports every failure); REQUIRE_* also returns from the test,
 * for when the rest of it would dereference what just failed. Single-threaded. */
#ifndef SLUICE_TESTS_UNIT_H
#define SLUICE_TESTS_UNIT_H

#include <stdbool.h>
#include <string.h>

#include "core/err.h"

/* Runs fn as test `name` of the current suite unless the command-line filter excludes it. */
void unit_run(const char *name, void (*fn)(void));
/* Marks the current test failed and prints "file:line: message". */
void unit_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Compares two possibly-NULL strings; prints both on a mismatch. Returns true when equal. */
bool unit_eq_str(const char *file, int line, const char *aexpr, const char *bexpr, const char *a,
                 const char *b);
/* A fresh empty directory under /tmp for this test (caller removes it with unit_rmdir). */
char *unit_tmpdir(void);
/* Removes dir and the files directly inside it, then frees dir. */
void unit_rmdir(char *dir);

struct db;
/* A migrated SQLite database in a fresh temp dir (*dir, for unit_rmdir after db_close) with
 * the tenants "acme" and "globex"; NULL (the test failed) when it cannot be made. */
struct db *unit_db_open(char **dir);
/* The first column of the first row of sql (one optional text argument) as an integer; -1
 * when there is no row. */
long long unit_db_int(struct db *db, const char *sql, const char *arg);

#define RUN(fn) unit_run(#fn, fn)

#define ASSERT_TRUE(x)                                                                             \
    do {                                                                                           \
        if (!(x))                                                                                  \
            unit_fail(__FILE__, __LINE__, "ASSERT_TRUE(%s) is false", #x);                         \
    } while (0)

#define ASSERT_EQ_INT(a, b)                                                                        \
    do {                                                                                           \
        long long unit_a_ = (long long)(a), unit_b_ = (long long)(b);                              \
        if (unit_a_ != unit_b_)                                                                    \
            unit_fail(__FILE__, __LINE__, "ASSERT_EQ_INT(%s, %s): %lld != %lld", #a, #b, unit_a_,  \
                      unit_b_);                                                                    \
    } while (0)

#define ASSERT_EQ_STR(a, b) ((void)unit_eq_str(__FILE__, __LINE__, #a, #b, (a), (b)))

/* Like ASSERT_EQ_INT for enum err, printing the names. */
#define ASSERT_EQ_ERR(a, b)                                                                        \
    do {                                                                                           \
        enum err unit_a_ = (a), unit_b_ = (b);                                                     \
        if (unit_a_ != unit_b_)                                                                    \
            unit_fail(__FILE__, __LINE__, "ASSERT_EQ_ERR(%s, %s): %s != %s", #a, #b,               \
                      err_name(unit_a_), err_name(unit_b_));                                       \
    } while (0)

/* Fails the test and returns from it when x is false. */
#define REQUIRE_TRUE(x)                                                                            \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            unit_fail(__FILE__, __LINE__, "REQUIRE_TRUE(%s) is false", #x);                        \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* One suite per module (tests/unit/test_<module>.c). */
void unit_alert(void);
void unit_deliver(void);
void unit_buf(void);
void unit_catalog(void);
void unit_config(void);
void unit_crypto(void);
void unit_db(void);
void unit_id(void);
void unit_json(void);
void unit_list(void);
void unit_metrics(void);
void unit_retry(void);
void unit_stream(void);
void unit_timeutil(void);

#endif
