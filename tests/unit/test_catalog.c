/* Tests for stream/catalog: type-name rules, built-in and failure tables, registered types. */
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/store.h"
#include "stream/catalog.h"
#include "unit.h"

static void test_catalog_name_valid(void)
{
    static const char *const good[] = {
        "order.created", "a.b",      "fulfillment_request.assigned",
        "x1.y_2",        "order.v2", "inventory.stock_level_changed",
    };
    static const char *const bad[] = {
        "",          "order",         "order.",         ".created",        "order..created",
        "a.b.c",     "Order.created", "order.Created",  "order-x.created", "order.cre ated",
        "order.cré", "order/created", " order.created", "order.created ",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        if (!catalog_name_valid(good[i]))
            unit_fail(__FILE__, __LINE__, "catalog_name_valid(\"%s\") is false", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (catalog_name_valid(bad[i]))
            unit_fail(__FILE__, __LINE__, "catalog_name_valid(\"%s\") is true", bad[i]);
    /* every built-in and failure name follows the rule */
    for (const struct catalog_type *t = catalog_builtin; t->name; t++)
        ASSERT_TRUE(catalog_name_valid(t->name));
    for (const struct catalog_type *t = catalog_failures; t->name; t++)
        ASSERT_TRUE(catalog_name_valid(t->name));
}

static void test_catalog_entity(void)
{
    char e[72];
    catalog_entity("order.created", e, sizeof e);
    ASSERT_EQ_STR(e, "order");
    catalog_entity("fulfillment_request.assigned", e, sizeof e);
    ASSERT_EQ_STR(e, "fulfillment_request");
    catalog_entity("a.b.c", e, sizeof e); /* up to the first dot */
    ASSERT_EQ_STR(e, "a");
    catalog_entity("nodot", e, sizeof e);
    ASSERT_EQ_STR(e, "nodot");
    char small[4];
    catalog_entity("inventory.adjusted", small, sizeof small); /* truncated, terminated */
    ASSERT_EQ_STR(small, "inv");
}

static void test_catalog_builtin_and_failures(void)
{
    ASSERT_TRUE(catalog_is_builtin("order.created"));
    ASSERT_TRUE(catalog_is_builtin("purchase_order.cancelled"));
    ASSERT_TRUE(!catalog_is_builtin("order.import_failed"));
    ASSERT_TRUE(!catalog_is_builtin("order.create"));
    ASSERT_TRUE(!catalog_is_builtin("ORDER.CREATED"));
    ASSERT_TRUE(!catalog_is_builtin(""));
    ASSERT_TRUE(catalog_is_failure("order.import_failed"));
    ASSERT_TRUE(catalog_is_failure("event_stream.delivery_failed"));
    ASSERT_TRUE(!catalog_is_failure("order.created"));
    ASSERT_TRUE(!catalog_is_failure(""));
    /* the tables are terminated, described, and disjoint, without duplicates */
    int n = 0;
    for (const struct catalog_type *t = catalog_builtin; t->name; t++, n++) {
        ASSERT_TRUE(t->description && *t->description);
        ASSERT_TRUE(!catalog_is_failure(t->name));
        for (const struct catalog_type *u = t + 1; u->name; u++)
            ASSERT_TRUE(strcmp(t->name, u->name) != 0);
    }
    ASSERT_TRUE(n >= 20);
    n = 0;
    for (const struct catalog_type *t = catalog_failures; t->name; t++, n++) {
        ASSERT_TRUE(t->description && *t->description);
        for (const struct catalog_type *u = t + 1; u->name; u++)
            ASSERT_TRUE(strcmp(t->name, u->name) != 0);
    }
    ASSERT_TRUE(n >= 10);
}

static void test_catalog_type_known(void)
{
    char *dir = unit_tmpdir();
    char *url = xasprintf("sqlite:%s/catalog.db", dir);
    struct db *db = NULL;
    char errmsg[256] = "";
    ASSERT_EQ_ERR(db_open(url, &db, errmsg, sizeof errmsg), ERR_OK);
    if (db) {
        ASSERT_EQ_ERR(store_migrate(db, errmsg, sizeof errmsg), ERR_OK);
        ASSERT_EQ_ERR(db_exec(db, "INSERT INTO tenants (id, name, created_at) "
                                  "VALUES ('ten_a', 'A', 0), ('ten_b', 'B', 0)"),
                      ERR_OK);
        ASSERT_EQ_ERR(db_exec(db, "INSERT INTO event_types (tenant_id, name, entity, "
                                  "description, created_at) "
                                  "VALUES ('ten_a', 'widget.spun', 'widget', 'd', 0)"),
                      ERR_OK);
        ASSERT_EQ_ERR(catalog_type_known(db, "ten_a", "order.created"), ERR_OK);
        ASSERT_EQ_ERR(catalog_type_known(db, "ten_a", "widget.spun"), ERR_OK);
        ASSERT_EQ_ERR(catalog_type_known(db, "ten_b", "widget.spun"), ERR_NOT_FOUND);
        ASSERT_EQ_ERR(catalog_type_known(db, "ten_a", "widget.stopped"), ERR_NOT_FOUND);
        db_release(db);
        db_close(db);
    }
    free(url);
    unit_rmdir(dir);
}

void unit_catalog(void)
{
    RUN(test_catalog_name_valid);
    RUN(test_catalog_entity);
    RUN(test_catalog_builtin_and_failures);
    RUN(test_catalog_type_known);
}
