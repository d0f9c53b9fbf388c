/* Built-in catalog tables and lookups. Any thread. */
#include "stream/catalog.h"

#include <stdio.h>
#include <string.h>

const struct catalog_type catalog_builtin[] = {
    {"order.created", "An order was placed."},
    {"order.updated", "An order's details changed."},
    {"order.completed", "Every item of an order was fulfilled or cancelled."},
    {"order.cancelled", "An order was cancelled."},
    {"order.payment_captured", "Payment for an order was captured."},
    {"order.refunded", "An order was refunded, wholly or in part."},
    {"return.created", "A return was started."},
    {"return.processed", "Returned items were received and processed."},
    {"return.refunded", "A return was refunded."},
    {"return.rejected", "A return was rejected."},
    {"fulfillment_request.created", "A fulfillment request was created for an order."},
    {"fulfillment_request.assigned", "A fulfillment request was assigned to a location."},
    {"fulfillment_request.acknowledged", "The location acknowledged the request."},
    {"fulfillment_request.rejected", "The location rejected the request."},
    {"fulfillment_request.shipped", "The items of the request were shipped."},
    {"fulfillment_request.cancelled", "The fulfillment request was cancelled."},
    {"shipment.created", "A shipment was created."},
    {"shipment.shipped", "A shipment left the warehouse."},
    {"shipment.delivered", "A shipment was delivered."},
    {"shipment.exception", "The carrier reported a problem with a shipment."},
    {"inventory.adjusted", "Stock on hand was adjusted."},
    {"inventory.reserved", "Stock was reserved for an order."},
    {"inventory.released", "A stock reservation was released."},
    {"inventory.stock_level_changed", "The available stock level of an item changed."},
    {"purchase_order.created", "A purchase order was created."},
    {"purchase_order.approved", "A purchase order was approved."},
    {"purchase_order.received", "Goods of a purchase order were received."},
    {"purchase_order.cancelled", "A purchase order was cancelled."},
    {NULL, NULL},
};

const struct catalog_type catalog_failures[] = {
    {"order.import_failed", "An order could not be imported."},
    {"order.export_failed", "An order could not be exported."},
    {"order.update_failed", "An order could not be updated."},
    {"order.cancel_failed", "An order could not be cancelled."},
    {"shipment.import_failed", "A shipment could not be imported."},
    {"shipment.export_failed", "A shipment could not be exported."},
    {"shipment.tracking_failed", "Tracking for a shipment could not be updated."},
    {"inventory.sync_failed", "Inventory could not be synchronised."},
    {"inventory.import_failed", "Inventory could not be imported."},
    {"return.import_failed", "A return could not be imported."},
    {"return.export_failed", "A return could not be exported."},
    {"return.refund_failed", "A return's refund failed."},
    {"purchase_order.export_failed", "A purchase order could not be exported."},
    {"purchase_order.receipt_failed", "A purchase order receipt could not be recorded."},
    {"event_stream.delivery_failed", "An Event Stream delivery failed for good or is lagging."},
    {"event_stream.event_rejected", "An Event Stream consumer rejected an event."},
    {"event_stream.integration_stopped", "An Event Stream integration was paused by Sluice."},
    {NULL, NULL},
};

static bool in(const struct catalog_type *t, const char *name)
{
    for (; t->name; t++)
        if (!strcmp(t->name, name))
            return true;
    return false;
}

bool catalog_is_builtin(const char *name)
{
    return in(catalog_builtin, name);
}

bool catalog_is_failure(const char *name)
{
    return in(catalog_failures, name);
}

static bool part_ok(const char *s, size_t n)
{
    if (n == 0 || n > 64 || !(s[0] >= 'a' && s[0] <= 'z'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

bool catalog_name_valid(const char *name)
{
    const char *dot = strchr(name, '.');
    if (!dot || strchr(dot + 1, '.'))
        return false;
    return part_ok(name, (size_t)(dot - name)) && part_ok(dot + 1, strlen(dot + 1));
}

void catalog_entity(const char *name, char *out, size_t outlen)
{
    size_t n = strcspn(name, ".");
    snprintf(out, outlen, "%.*s", (int)n, name);
}

enum err catalog_type_known(struct db *db, const char *tenant, const char *name)
{
    if (catalog_is_builtin(name))
        return ERR_OK;
    struct db_stmt *st = db_stmt(db, "SELECT 1 FROM event_types WHERE tenant_id = ? AND name = ?");
    db_bind_text(st, 1, tenant);
    db_bind_text(st, 2, name);
    enum err rc = db_next(st);
    return rc == ERR_OK ? ERR_OK : rc == ERR_DONE ? ERR_NOT_FOUND : rc;
}
