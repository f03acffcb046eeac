/* libFuzzer target: the pg_dump custom-format scanner on hostile archives,
 * fed in chunks whose size the first input byte picks. A second scanner
 * rewrites the archive as a restore does (dumpscan_set_output). When the
 * first accepts the input, the rewritten archive must scan to the same
 * contents: the rewrite may change the chunking and nothing else. */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "common/buf.h"
#include "dumpscan.h"

static int collect_output(void *context, const void *data, size_t len, stow_error *err)
{
    return stow_buf_append(context, data, len, err);
}

/* Scans data in pieces of chunk bytes; returns the finished scanner or
 * NULL. With output set, the rewritten archive goes there. */
static dumpscan *scan(const uint8_t *data, size_t size, size_t chunk, stow_buf *output)
{
    struct dumpscan_options rewrite_options = {.skip_row_digests = 1, .skip_rows = 1};
    struct dumpscan_output sink = {.context = output, .write = collect_output};
    dumpscan *scanner = NULL;
    stow_error err = {0};

    if (dumpscan_new(output != NULL ? &rewrite_options : NULL, &scanner, &err) != 0)
        return NULL;
    if (output != NULL)
        dumpscan_set_output(scanner, &sink);
    for (size_t offset = 0; offset < size; offset += chunk) {
        size_t len = size - offset < chunk ? size - offset : chunk;

        if (dumpscan_write(scanner, data + offset, len, &err) != 0)
            break;
    }
    if (stow_error_is_set(&err) || dumpscan_finish(scanner, &err) != 0) {
        dumpscan_free(scanner);
        return NULL;
    }
    return scanner;
}

/* Aborts when the rewritten archive does not scan to contents. */
static void check_rewrite(const stow_buf *output, const json_t *contents)
{
    dumpscan *again = scan(output->data, output->len, output->len ? output->len : 1, NULL);
    json_t *actual = again != NULL ? dumpscan_to_json(again) : NULL;

    if (actual == NULL || !json_equal(contents, actual))
        abort();
    json_decref(actual);
    dumpscan_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    dumpscan *original;
    dumpscan *rewriter;
    stow_buf output;
    size_t chunk;

    if (size < 1)
        return 0;
    chunk = (size_t)data[0] + 1;
    data++;
    size--;

    stow_buf_init(&output, 64u * 1024 * 1024);
    original = scan(data, size, chunk, NULL);
    rewriter = scan(data, size, chunk, &output);
    /* The rewriter skips the rows, so it may accept an archive whose rows
     * the original rejects, but never the other way round. */
    if (original != NULL && rewriter == NULL)
        abort();
    if (original != NULL) {
        json_t *contents = dumpscan_to_json(original);

        check_rewrite(&output, contents);
        json_decref(contents);
    }
    dumpscan_free(original);
    dumpscan_free(rewriter);
    stow_buf_free(&output);
    return 0;
}
