/* The web console's server side: the embedded web/ files (GET / and GET /ui/...) and the
 * unsubscribe pages that notification mails link to (GET and POST /unsubscribe/{token}).
 *
 * HTTP threads; the unsubscribe POST commits through http_defer(). Every answer here carries
 * the console's security headers: a strict Content-Security-Policy (scripts, styles, images
 * and fetches from this origin only, no inline script, no framing), nosniff, no referrer.
 * Pages are rendered with every outside value HTML-escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "alert/channels.h"
#include "api/api.h"
#include "core/embed.h"
#include "core/timeutil.h"
#include "core/xalloc.h"
#include "notify/unsubscribe.h"

#define CSP                                                                                        \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; font-src 'self'; manifest-src 'self'; base-uri 'none'; "                  \
    "form-action 'self'; frame-ancestors 'none'"

static void security_headers(struct http_req *req)
{
    http_add_header(req, "Content-Security-Policy", CSP);
    http_add_header(req, "X-Content-Type-Options", "nosniff");
    http_add_header(req, "X-Frame-Options", "DENY");
    http_add_header(req, "Referrer-Policy", "no-referrer");
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".json", "application/json"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

/* Answers with an embedded file: revalidated on every use (Cache-Control: no-cache) against
 * its ETag, so a new binary's console is picked up at once and an unchanged one costs a 304. */
static void serve(struct http_req *req, const char *name)
{
    const struct embedded_file *f = embed_find(name);
    if (!f || strncmp(name, "web/", 4) != 0) {
        http_problem(req, 404, "no such console file", NULL);
        return;
    }
    const char *inm = http_header(req, "If-None-Match");
    if (inm && strstr(inm, f->etag)) {
        http_raw(req, 304, NULL, "", 0);
    } else {
        http_raw(req, 200, content_type(name), (const char *)f->data, f->len);
    }
    security_headers(req);
    http_add_header(req, "Cache-Control", "no-cache");
    http_add_header(req, "ETag", f->etag);
}

void api_console(struct http_req *req)
{
    serve(req, "web/index.html");
}

void api_console_asset(struct http_req *req)
{
    /* /ui/<path> is web/<path>; the router allows one or two segments, never "..". */
    const char *rest = req->path + strlen("/ui/");
    if (strstr(rest, "..")) {
        http_problem(req, 404, "no such console file", NULL);
        return;
    }
    char name[256];
    snprintf(name, sizeof name, "web/%s", rest);
    serve(req, name);
}

/* --- unsubscribe pages ------------------------------------------------------------------ */

/* Starts a standalone page (the console's stylesheet, no script). */
static void page_open(struct buf *b, const char *title)
{
    buf_puts(b, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                "<meta name=\"robots\" content=\"noindex\"><title>");
    buf_put_html(b, title);
    buf_puts(b, " · Sluice</title><link rel=\"stylesheet\" href=\"/ui/style.css\"></head>\n"
                "<body class=\"standalone\"><main class=\"card narrow\" id=\"main\">\n"
                "<p class=\"brand\">Sluice</p>\n<h1>");
    buf_put_html(b, title);
    buf_puts(b, "</h1>\n");
}

static void page_send(struct http_req *req, int status, struct buf *b)
{
    buf_puts(b, "</main></body></html>\n");
    http_raw(req, status, "text/html; charset=utf-8", b->data, b->len);
    security_headers(req);
    http_add_header(req, "Cache-Control", "no-store");
    buf_cleanup(b);
}

static void page_invalid(struct http_req *req)
{
    struct buf b = BUF_INIT;
    page_open(&b, "This link is not valid");
    buf_puts(&b, "<p>The unsubscribe link is incomplete or was changed. Use the link from the "
                 "mail exactly as it came, or ask whoever runs your notification channels to "
                 "remove your address.</p>\n");
    page_send(req, 404, &b);
}

static void page_channel_gone(struct http_req *req, const struct unsub_target *t)
{
    struct buf b = BUF_INIT;
    page_open(&b, "Nothing to unsubscribe from");
    buf_puts(&b, "<p>The notification channel this mail came from no longer exists, so ");
    buf_put_html(&b, t->address);
    buf_puts(&b, " receives nothing more from it.</p>\n");
    page_send(req, 404, &b);
}

/* The channel's name and whether t's address is still on it. */
static enum err channel_state(struct db *db, const struct unsub_target *t, char **name,
                              bool *subscribed)
{
    struct channel c;
    enum err rc = channel_load(db, t->tenant, t->channel_id, &c);
    if (rc != ERR_OK)
        return rc;
    *name = xstrdup(c.name);
    *subscribed = false;
    size_t i;
    json_t *e;
    json_array_foreach(c.addresses, i, e)
    {
        if (!strcasecmp(json_string_value(e), t->address))
            *subscribed = true;
    }
    channel_cleanup(&c);
    return ERR_OK;
}

void api_unsubscribe_page(struct http_req *req)
{
    struct unsub_target t;
    if (unsubscribe_verify(http_param(req, 0), &t) != ERR_OK) {
        page_invalid(req);
        return;
    }
    struct db *db = http_reader(req);
    if (!db)
        return;
    char *name = NULL;
    bool subscribed = false;
    enum err rc = channel_state(db, &t, &name, &subscribed);
    if (rc == ERR_NOT_FOUND) {
        page_channel_gone(req, &t);
        return;
    }
    if (rc != ERR_OK) {
        http_problem_err(req, rc, NULL);
        return;
    }
    struct buf b = BUF_INIT;
    if (!subscribed) {
        page_open(&b, "Already unsubscribed");
        buf_puts(&b, "<p>");
        buf_put_html(&b, t.address);
        buf_puts(&b, " receives no mail from the notification channel “");
        buf_put_html(&b, name);
        buf_puts(&b, "”.</p>\n");
    } else {
        page_open(&b, "Stop these mails?");
        buf_puts(&b, "<p>Stop sending Sluice notification mails to <strong>");
        buf_put_html(&b, t.address);
        buf_puts(&b, "</strong> from the notification channel “");
        buf_put_html(&b, name);
        buf_puts(&b, "”? The channel's other addresses keep receiving them, and the channel "
                     "shows that you unsubscribed.</p>\n<form method=\"post\">"
                     "<input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                     "<button type=\"submit\" class=\"primary\">Unsubscribe</button></form>\n");
    }
    free(name);
    page_send(req, 200, &b);
}

struct unsub_ctx {
    struct unsub_target t;
    bool done;
};

static enum err unsub_run(struct db *db, void *arg)
{
    struct unsub_ctx *c = arg;
    return unsubscribe_apply(db, &c->t, time_now_ms(), &c->done);
}

static void unsub_finish(struct http_req *req)
{
    struct unsub_ctx *c = req->ctx;
    if (req->job.rc == ERR_NOT_FOUND) {
        page_channel_gone(req, &c->t);
        return;
    }
    if (req->job.rc != ERR_OK) {
        http_problem_err(req, req->job.rc, NULL);
        return;
    }
    struct buf b = BUF_INIT;
    page_open(&b, "Unsubscribed");
    buf_puts(&b, "<p><strong>");
    buf_put_html(&b, c->t.address);
    buf_puts(&b, c->done ? "</strong> will receive no more mail from this notification channel."
                         : "</strong> was already off this notification channel.");
    buf_puts(&b, " To get the mails again, ask whoever runs your notification channels to add "
                 "the address back.</p>\n");
    page_send(req, 200, &b);
}

void api_unsubscribe(struct http_req *req)
{
    struct unsub_ctx *c = xcalloc(1, sizeof *c);
    if (unsubscribe_verify(http_param(req, 0), &c->t) != ERR_OK) {
        free(c);
        page_invalid(req);
        return;
    }
    http_defer(req, unsub_run, unsub_finish, c, free, 0);
}
