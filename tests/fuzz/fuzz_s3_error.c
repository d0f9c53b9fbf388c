/* Fuzz target: the S3 error XML parser (s3_error_parse: <Code>, <Message>) and the value
 * reader the multipart upload uses (<UploadId>), on whatever an S3 endpoint may answer.
 * Pure functions; one thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "deliver/s3_int.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = malloc(size + 1);
    memcpy(xml, data, size);
    xml[size] = '\0';
    char code[64], msg[512], id[256], tiny[1];
    s3_error_parse(xml, code, sizeof code, msg, sizeof msg);
    s3_xml_value(xml, "UploadId", id, sizeof id);
    s3_xml_value(xml, "ETag", tiny, sizeof tiny);
    if (strlen(code) >= sizeof code || strlen(msg) >= sizeof msg || strlen(id) >= sizeof id ||
        tiny[0])
        abort();
    free(xml);
    return 0;
}
