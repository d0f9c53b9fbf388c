/* Registration and lifecycle of the delivery engines. deliver_register/start/stop run on
 * the main thread; deliver_wake on the writer thread (the commit hook). */
#include "deliver/deliver.h"

#include "deliver/s3.h"
#include "deliver/webhook.h"
#include "store/store.h"
#include "stream/targets.h"

void deliver_register(void)
{
    target_register(&webhook_driver);
    target_register(&s3_driver);
}

enum err deliver_start(const struct config *cfg, const char **what)
{
    if (config_has_role(cfg, "webhook") && webhook_start(cfg) != ERR_OK) {
        *what = "webhook";
        return ERR_INTERNAL;
    }
    if (config_has_role(cfg, "s3") && s3_start(cfg) != ERR_OK) {
        *what = "S3";
        return ERR_INTERNAL;
    }
    return ERR_OK;
}

void deliver_stop(void)
{
    webhook_stop();
    s3_stop();
}

void deliver_wake(unsigned mask)
{
    if (mask & STORE_WAKE_CONFIG) {
        webhook_config_changed();
        s3_config_changed();
    } else if (mask & STORE_WAKE_DELIVER) {
        webhook_wake();
        s3_wake();
    }
}
