/* Names of error codes for logs. Any thread. */
#include "core/err.h"

const char *err_name(enum err rc)
{
    switch (rc) {
    case ERR_OK:
        return "ok";
    case ERR_DONE:
        return "done";
    case ERR_NOMEM:
        return "out of memory";
    case ERR_INVALID:
        return "invalid";
    case ERR_MALFORMED:
        return "malformed";
    case ERR_NOT_FOUND:
        return "not found";
    case ERR_CONFLICT:
        return "conflict";
    case ERR_TOO_BIG:
        return "too big";
    case ERR_STORAGE:
        return "storage";
    case ERR_IO:
        return "i/o";
    case ERR_AUTH:
        return "unauthorized";
    case ERR_FORBIDDEN:
        return "forbidden";
    case ERR_SHUTDOWN:
        return "shutting down";
    case ERR_INTERNAL:
        return "internal";
    }
    return "unknown";
}
