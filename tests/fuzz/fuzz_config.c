/* Fuzz target: `sluice serve` flags and the config file. The input is NUL-separated
 * arguments, then optionally "\n#FILE\n" and the contents of a config file that the harness
 * writes to a temp file and passes with --config (a --config in the input is dropped: the
 * target is the parser, not /dev/zero). Main thread only, as at start-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "fuzz.h"

#define MAX_ARGS 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    static FILE *devnull;
    if (!path[0]) {
        snprintf(path, sizeof path, "/tmp/sluice-fuzz-config-%d", (int)getpid());
        devnull = fopen("/dev/null", "w");
        for (char **e = environ; *e;)
            if (!strncmp(*e, "SLUICE_", 7)) {
                char name[128];
                snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
                unsetenv(name);
            } else {
                e++;
            }
    }
    char *s = malloc(size + 1);
    memcpy(s, data, size);
    s[size] = '\0';
    char *file = NULL;
    size_t args_len = size;
    char *mark = memmem(s, size, "\n#FILE\n", 7);
    if (mark) {
        file = mark + 7;
        args_len = (size_t)(mark - s);
        *mark = '\0';
    }
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    for (char *p = s; p < s + args_len && argc < MAX_ARGS; p += strlen(p) + 1) {
        if (!strcmp(p, "--config") || !strncmp(p, "--config=", 9)) {
            if (!strcmp(p, "--config") && p + strlen(p) + 1 < s + args_len)
                p += strlen(p) + 1; /* and its value */
            continue;
        }
        argv[argc++] = p;
    }
    if (file) {
        FILE *f = fopen(path, "w");
        if (!f)
            abort();
        fwrite(file, 1, size - (size_t)(file - s), f);
        fclose(f);
        argv[argc++] = "--config";
        argv[argc++] = path;
    }
    struct config cfg;
    int rc = config_parse(&cfg, argc, argv, devnull, devnull);
    if (rc == 0 && (!cfg.listen || !cfg.db || !cfg.roles || cfg.time_scale <= 0 ||
                    cfg.lease_ms < 1000 || cfg.http_threads < 1))
        abort(); /* accepted, so it must be complete and in range */
    config_cleanup(&cfg);
    if (file)
        unlink(path);
    free(s);
    return 0;
}
