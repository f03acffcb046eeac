/* storage_tool: a small command line over the storage interface and the
 * SigV4 signer, driven by the integration tests.
 *
 *   storage_tool [OPTIONS] check
 *   storage_tool [OPTIONS] put KEY [--if-none-match]   (object bytes on stdin)
 *   storage_tool [OPTIONS] get KEY                     (object bytes on stdout)
 *   storage_tool [OPTIONS] get-range KEY OFFSET LENGTH
 *   storage_tool [OPTIONS] head KEY                    (JSON on stdout)
 *   storage_tool [OPTIONS] list PREFIX                 (JSON array on stdout)
 *   storage_tool [OPTIONS] delete KEY
 *   storage_tool [OPTIONS] upload KEY PART_SIZE [ABORT_AFTER_PARTS]
 *       streams stdin as a multipart upload and prints the part list as JSON;
 *       with ABORT_AFTER_PARTS it aborts after that many parts and exits 1
 *   storage_tool [OPTIONS] download KEY PARTS_JSON_FILE
 *       streams the object back by the part list that upload printed
 *   storage_tool [OPTIONS] uploads PREFIX
 *       lists the unfinished S3 multipart uploads under PREFIX (a full key
 *       prefix in the bucket of --repo) as JSON
 *   storage_tool sign SERVICE REGION METHOD HOST PATH UNIX_TIME PAYLOAD_HASH
 *                [name:value | name=value]...
 *   storage_tool presign SERVICE REGION METHOD HOST PATH UNIX_TIME EXPIRES
 *                [name=value]...
 *       sign and presign print the result for the credentials in the
 *       environment. "name:value" adds a header, "name=value" a query parameter.
 *
 * OPTIONS: --repo URL (required), --endpoint URL, --region REGION,
 * --path-style auto|on|off, --storage-class CLASS, --transfers N,
 * --max-attempts N, --min-part-size BYTES.
 *
 * Exit codes: 0, the stow_error exit code of a failure, 11 when the key
 * does not exist (STORAGE_NOT_FOUND) and 12 when a conditional put lost
 * (STORAGE_CONFLICT). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "aws/s3.h"
#include "aws/sigv4.h"
#include "common/log.h"
#include "storage/storage.h"

#define TOOL_PUT_MAX (256u * 1024 * 1024)
#define TOOL_SIGN_MAX_ITEMS 32

struct tool {
    struct storage_options options;
    storage *store;
    stow_error err;
    char **args;
    int arg_count;
};

static int print_usage(void)
{
    fprintf(stderr, "usage: storage_tool [--repo URL] [--endpoint URL] [--region REGION] "
                    "[--path-style auto|on|off] [--storage-class CLASS] [--transfers N] "
                    "[--max-attempts N] [--min-part-size BYTES] COMMAND ARGS...\n"
                    "commands: check, put, get, get-range, head, list, delete, upload, "
                    "download, uploads, sign, presign\n");
    return STOW_EXIT_USAGE;
}

/* Records a usage error for a command with missing arguments. */
static int fail_usage(struct tool *tool)
{
    print_usage();
    return stow_fail(&tool->err, STOW_EXIT_USAGE, "missing or invalid arguments");
}

static void hex_encode(const uint8_t *bytes, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 0x0f];
    }
    out[2 * len] = '\0';
}

static int hex_decode(const char *text, uint8_t *out, size_t len)
{
    if (strlen(text) != 2 * len)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned value;

        if (sscanf(text + 2 * i, "%2x", &value) != 1)
            return -1;
        out[i] = (uint8_t)value;
    }
    return 0;
}

static int write_all(const void *data, size_t len)
{
    return len == 0 || fwrite(data, 1, len, stdout) == len ? 0 : -1;
}

/* Fills buf from stdin until it contains max bytes or stdin ends. */
static int read_stdin(stow_buf *buf, size_t max, stow_error *err)
{
    uint8_t chunk[65536];

    while (buf->len < max) {
        size_t want = max - buf->len < sizeof chunk ? max - buf->len : sizeof chunk;
        size_t got = fread(chunk, 1, want, stdin);

        if (got == 0)
            return ferror(stdin) ? stow_fail(err, STOW_EXIT_FAILURE, "reading stdin failed") : 0;
        if (stow_buf_append(buf, chunk, got, err) != 0)
            return -1;
    }
    return 0;
}

static int print_json(json_t *value)
{
    char *text = json_dumps(value, JSON_INDENT(1));
    int rc = text != NULL && printf("%s\n", text) > 0 ? 0 : -1;

    free(text);
    return rc;
}

/* --- storage commands ------------------------------------------------------ */

static int command_check(struct tool *tool)
{
    return storage_check(tool->store, STORAGE_ACCESS_WRITE, &tool->err);
}

static int command_put(struct tool *tool)
{
    struct storage_put_options options = {0, NULL};
    stow_buf data;
    int rc;

    if (tool->arg_count < 1)
        return fail_usage(tool);
    options.if_none_match = tool->arg_count > 1 && strcmp(tool->args[1], "--if-none-match") == 0;
    stow_buf_init(&data, TOOL_PUT_MAX);
    rc = read_stdin(&data, TOOL_PUT_MAX, &tool->err);
    if (rc == 0)
        rc = storage_put(tool->store, tool->args[0], data.data, data.len, &options, &tool->err);
    if (rc == STORAGE_CONFLICT)
        fprintf(stderr, "conflict: %s exists\n", tool->args[0]);
    stow_buf_free(&data);
    return rc;
}

static int print_object(int rc, const stow_buf *data, const char *key)
{
    if (rc == STORAGE_NOT_FOUND)
        fprintf(stderr, "not found: %s\n", key);
    if (rc == 0 && write_all(data->data, data->len) != 0)
        return -1;
    return rc;
}

static int command_get(struct tool *tool)
{
    stow_buf data;
    int rc;

    if (tool->arg_count < 1)
        return fail_usage(tool);
    stow_buf_init(&data, TOOL_PUT_MAX);
    rc = storage_get(tool->store, tool->args[0], &data, &tool->err);
    rc = print_object(rc, &data, tool->args[0]);
    stow_buf_free(&data);
    return rc;
}

static int command_get_range(struct tool *tool)
{
    stow_buf data;
    int rc;

    if (tool->arg_count < 3)
        return fail_usage(tool);
    stow_buf_init(&data, TOOL_PUT_MAX);
    rc = storage_get_range(tool->store, tool->args[0], strtoull(tool->args[1], NULL, 10),
                           strtoull(tool->args[2], NULL, 10), &data, &tool->err);
    rc = print_object(rc, &data, tool->args[0]);
    stow_buf_free(&data);
    return rc;
}

static int command_head(struct tool *tool)
{
    struct storage_object_info info;
    int rc;

    if (tool->arg_count < 1)
        return fail_usage(tool);
    rc = storage_head(tool->store, tool->args[0], &info, &tool->err);
    if (rc == STORAGE_NOT_FOUND)
        fprintf(stderr, "not found: %s\n", tool->args[0]);
    if (rc == 0) {
        json_t *output = json_pack("{s:I, s:I, s:s}", "size", (json_int_t)info.size, "modified",
                                   (json_int_t)info.modified, "etag", info.etag);

        rc = print_json(output);
        json_decref(output);
    }
    return rc;
}

static int add_listed_key(const char *key, const struct storage_object_info *info,
                          void *context)
{
    json_t *entry = json_pack("{s:s, s:I, s:s}", "key", key, "size", (json_int_t)info->size,
                              "etag", info->etag);

    return entry == NULL || json_array_append_new(context, entry) != 0 ? -1 : 0;
}

static int command_list(struct tool *tool)
{
    json_t *keys = json_array();
    int rc;

    rc = storage_list(tool->store, tool->arg_count > 0 ? tool->args[0] : "", add_listed_key, keys,
                      &tool->err);
    if (rc == 0)
        rc = print_json(keys);
    json_decref(keys);
    return rc;
}

static int command_delete(struct tool *tool)
{
    if (tool->arg_count < 1)
        return fail_usage(tool);
    return storage_delete(tool->store, tool->args[0], &tool->err);
}

/* --- streaming upload and download --------------------------------------- */

static json_t *parts_to_json(const struct storage_part_list *list)
{
    json_t *parts = json_array();
    char hex[65];

    for (size_t i = 0; i < list->count; i++) {
        const struct storage_part *part = &list->parts[i];

        hex_encode(part->sha256, 32, hex);
        json_array_append_new(parts, json_pack("{s:i, s:I, s:I, s:s}", "number", (int)part->number,
                                               "offset", (json_int_t)part->offset, "size",
                                               (json_int_t)part->size, "sha256", hex));
    }
    return json_pack("{s:o, s:I}", "parts", parts, "total_size", (json_int_t)list->total_size);
}

/* Reads stdin in parts of part_size bytes into the upload. */
static int stream_parts(struct tool *tool, storage_upload *upload, size_t part_size,
                        long abort_after)
{
    stow_buf part;
    long sent = 0;
    int rc = 0;

    stow_buf_init(&part, part_size);
    for (;;) {
        rc = read_stdin(&part, part_size, &tool->err);
        if (rc != 0 || part.len == 0)
            break;
        rc = storage_upload_part(upload, &part, &tool->err);
        if (rc != 0)
            break;
        sent++;
        if (abort_after > 0 && sent >= abort_after) {
            rc = stow_fail(&tool->err, STOW_EXIT_FAILURE,
                           "aborted after %ld parts, as ABORT_AFTER_PARTS requested", sent);
            break;
        }
    }
    stow_buf_free(&part);
    return rc;
}

static int command_upload(struct tool *tool)
{
    struct storage_part_list parts = {0};
    storage_upload *upload;
    json_t *output;
    int rc;

    if (tool->arg_count < 2)
        return fail_usage(tool);
    if (storage_upload_begin(tool->store, tool->args[0], &upload, &tool->err) != 0)
        return -1;

    rc = stream_parts(tool, upload, strtoull(tool->args[1], NULL, 10),
                      tool->arg_count > 2 ? atol(tool->args[2]) : 0);
    if (rc != 0) {
        storage_upload_abort(upload);
        return -1;
    }
    if (storage_upload_complete(upload, &parts, &tool->err) != 0)
        return -1;

    output = parts_to_json(&parts);
    rc = print_json(output);
    json_decref(output);
    storage_part_list_free(&parts);
    return rc;
}

static int part_from_json(json_t *item, struct storage_part *part)
{
    json_int_t number = 0, offset = 0, size = 0;
    const char *sha256 = NULL;

    if (json_unpack(item, "{s:I, s:I, s:I, s:s}", "number", &number, "offset", &offset, "size",
                    &size, "sha256", &sha256) != 0 ||
        hex_decode(sha256, part->sha256, 32) != 0)
        return -1;
    part->number = (uint32_t)number;
    part->offset = (uint64_t)offset;
    part->size = (uint64_t)size;
    return 0;
}

static int load_part_list(const char *path, struct storage_part_list *list, stow_error *err)
{
    json_error_t parse_error;
    json_t *root = json_load_file(path, 0, &parse_error);
    json_t *parts = json_object_get(root, "parts");
    int rc = -1;

    if (!json_is_array(parts)) {
        stow_fail(err, STOW_EXIT_USAGE, "%s is not a part list: %s", path, parse_error.text);
        goto done;
    }
    list->count = json_array_size(parts);
    list->parts = calloc(list->count + 1, sizeof *list->parts);
    for (size_t i = 0; list->parts != NULL && i < list->count; i++) {
        if (part_from_json(json_array_get(parts, i), &list->parts[i]) != 0)
            goto done;
        list->total_size += list->parts[i].size;
    }
    rc = list->parts != NULL ? 0 : -1;

done:
    if (rc != 0)
        stow_fail(err, STOW_EXIT_USAGE, "invalid part list in %s", path);
    json_decref(root);
    return rc;
}

static int command_download(struct tool *tool)
{
    struct storage_part_list ranges = {0};
    storage_download *download = NULL;
    stow_buf data;
    int rc;

    if (tool->arg_count < 2)
        return fail_usage(tool);
    stow_buf_init(&data, TOOL_PUT_MAX);
    rc = load_part_list(tool->args[1], &ranges, &tool->err);
    if (rc == 0)
        rc = storage_download_begin(tool->store, tool->args[0], &ranges, &download, &tool->err);
    while (rc == 0) {
        rc = storage_download_next(download, &data, &tool->err);
        if (rc == 0 && write_all(data.data, data.len) != 0)
            rc = stow_fail(&tool->err, STOW_EXIT_FAILURE, "writing stdout failed");
    }
    storage_download_free(download);
    storage_part_list_free(&ranges);
    stow_buf_free(&data);
    return rc == STORAGE_NOT_FOUND ? 0 : rc;
}

/* --- S3 multipart uploads ------------------------------------------------- */

static int add_upload(const char *key, const char *upload_id, time_t initiated, void *context)
{
    json_t *entry = json_pack("{s:s, s:s, s:I}", "key", key, "upload_id", upload_id,
                              "initiated", (json_int_t)initiated);

    return entry == NULL || json_array_append_new(context, entry) != 0 ? -1 : 0;
}

/* Copies the bucket of an s3://BUCKET/PREFIX URL into out. */
static int bucket_of(const char *url, char *out, size_t size, stow_error *err)
{
    size_t len;

    if (url == NULL || strncmp(url, "s3://", 5) != 0)
        return stow_fail(err, STOW_EXIT_USAGE, "uploads needs --repo s3://BUCKET");
    len = strcspn(url + 5, "/");
    if (len == 0 || len >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "invalid bucket in %s", url);
    memcpy(out, url + 5, len);
    out[len] = '\0';
    return 0;
}

static int command_uploads(struct tool *tool)
{
    char bucket[256];
    struct s3_options options = {0};
    s3_client *client = NULL;
    json_t *uploads = json_array();
    int rc;

    rc = bucket_of(tool->options.url, bucket, sizeof bucket, &tool->err);
    options.bucket = bucket;
    options.region = tool->options.region;
    options.endpoint = tool->options.endpoint;
    options.path_style = tool->options.path_style;
    if (rc == 0)
        rc = s3_client_new(&options, &client, &tool->err);
    if (rc == 0)
        rc = s3_list_multipart_uploads(client, tool->arg_count > 0 ? tool->args[0] : "",
                                       add_upload, uploads, &tool->err);
    if (rc == 0)
        rc = print_json(uploads);
    json_decref(uploads);
    s3_client_free(client);
    return rc;
}

/* --- signing ---------------------------------------------------------------- */

struct sign_items {
    struct sigv4_header headers[TOOL_SIGN_MAX_ITEMS];
    struct sigv4_param params[TOOL_SIGN_MAX_ITEMS];
    size_t header_count;
    size_t param_count;
};

/* Splits "name:value" into a header and "name=value" into a parameter, in
 * place. The first separator decides. */
static int parse_sign_items(char **args, int count, struct sign_items *items)
{
    memset(items, 0, sizeof *items);
    for (int i = 0; i < count && i < TOOL_SIGN_MAX_ITEMS; i++) {
        char *separator = strpbrk(args[i], ":=");

        if (separator == NULL)
            return -1;
        if (*separator == ':')
            items->headers[items->header_count++] = (struct sigv4_header){args[i], separator + 1};
        else
            items->params[items->param_count++] = (struct sigv4_param){args[i], separator + 1};
        *separator = '\0';
    }
    return 0;
}

/* Fills request from SERVICE REGION METHOD HOST PATH UNIX_TIME. */
static void describe_request(char **args, const struct sign_items *items,
                             struct sigv4_request *request)
{
    memset(request, 0, sizeof *request);
    request->service = args[0];
    request->region = args[1];
    request->method = args[2];
    request->host = args[3];
    request->path = args[4];
    request->time = (time_t)strtoll(args[5], NULL, 10);
    request->headers = items->headers;
    request->header_count = items->header_count;
    request->params = items->params;
    request->param_count = items->param_count;
}

static int load_environment_credentials(struct aws_credentials *credentials, stow_error *err)
{
    int rc = aws_credentials_from_environment(credentials, err);

    if (rc == 1)
        return stow_fail(err, STOW_EXIT_USAGE, "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    return rc;
}

static int command_sign(struct tool *tool)
{
    struct aws_credentials credentials;
    struct sign_items items;
    struct sigv4_request request;
    struct sigv4_signature signature;
    int rc;

    if (tool->arg_count < 7 || parse_sign_items(tool->args + 7, tool->arg_count - 7, &items) != 0)
        return fail_usage(tool);
    describe_request(tool->args, &items, &request);
    request.payload_hash = tool->args[6];

    rc = load_environment_credentials(&credentials, &tool->err);
    if (rc == 0)
        rc = sigv4_sign(&request, &credentials, &signature, &tool->err);
    if (rc == 0)
        printf("Authorization: %s\nX-Amz-Date: %s\n", signature.authorization,
               signature.amz_date);
    aws_credentials_clear(&credentials);
    return rc;
}

static int command_presign(struct tool *tool)
{
    struct aws_credentials credentials;
    struct sign_items items;
    struct sigv4_request request;
    stow_buf query;
    int rc;

    if (tool->arg_count < 7 || parse_sign_items(tool->args + 7, tool->arg_count - 7, &items) != 0)
        return fail_usage(tool);
    describe_request(tool->args, &items, &request);
    request.payload_hash = strcmp(request.service, "s3") == 0 ? SIGV4_UNSIGNED_PAYLOAD
                                                              : SIGV4_EMPTY_SHA256;

    stow_buf_init(&query, 1 << 20);
    rc = load_environment_credentials(&credentials, &tool->err);
    if (rc == 0)
        rc = sigv4_presign(&request, &credentials, (unsigned)strtoul(tool->args[6], NULL, 10),
                           &query, &tool->err);
    if (rc == 0)
        printf("%s\n", (const char *)query.data);
    aws_credentials_clear(&credentials);
    stow_buf_free(&query);
    return rc;
}

/* --- main -------------------------------------------------------------------- */

static int parse_path_style(const char *value)
{
    if (strcmp(value, "on") == 0)
        return 1;
    if (strcmp(value, "off") == 0)
        return 0;
    return -1;
}

/* Consumes leading --option VALUE pairs. Returns the index of the command. */
static int parse_options(int argc, char **argv, struct storage_options *options)
{
    int i = 1;

    memset(options, 0, sizeof *options);
    options->path_style = -1;
    for (; i + 1 < argc && strncmp(argv[i], "--", 2) == 0; i += 2) {
        const char *name = argv[i] + 2;
        const char *value = argv[i + 1];

        if (strcmp(name, "repo") == 0)
            options->url = value;
        else if (strcmp(name, "endpoint") == 0)
            options->endpoint = value;
        else if (strcmp(name, "region") == 0)
            options->region = value;
        else if (strcmp(name, "path-style") == 0)
            options->path_style = parse_path_style(value);
        else if (strcmp(name, "storage-class") == 0)
            options->storage_class = value;
        else if (strcmp(name, "transfers") == 0)
            options->transfers_in_flight = atoi(value);
        else if (strcmp(name, "max-attempts") == 0)
            options->max_attempts = atoi(value);
        else if (strcmp(name, "min-part-size") == 0)
            options->min_part_size = strtoull(value, NULL, 10);
        else
            return -1;
    }
    return i;
}

struct command {
    const char *name;
    int (*run)(struct tool *tool);
    int needs_store;
};

static const struct command commands[] = {
    {"check", command_check, 1},       {"put", command_put, 1},
    {"get", command_get, 1},           {"get-range", command_get_range, 1},
    {"head", command_head, 1},         {"list", command_list, 1},
    {"delete", command_delete, 1},     {"upload", command_upload, 1},
    {"download", command_download, 1}, {"uploads", command_uploads, 0},
    {"sign", command_sign, 0},         {"presign", command_presign, 0},
};

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct tool tool;
    const struct command *command;
    int index;
    int rc;

    memset(&tool, 0, sizeof tool);
    stow_log_set_level(getenv("STORAGE_TOOL_DEBUG") ? STOW_LOG_DEBUG : STOW_LOG_WARN);
    index = parse_options(argc, argv, &tool.options);
    if (index < 0 || index >= argc || (command = find_command(argv[index])) == NULL)
        return print_usage();
    tool.args = argv + index + 1;
    tool.arg_count = argc - index - 1;

    rc = 0;
    if (command->needs_store)
        rc = storage_open(&tool.options, &tool.store, &tool.err);
    if (rc == 0)
        rc = command->run(&tool);
    storage_free(tool.store);
    fflush(stdout);

    if (rc == STORAGE_NOT_FOUND || rc == STORAGE_CONFLICT)
        return 10 + rc;
    if (rc != 0 && !stow_error_is_set(&tool.err))
        stow_fail(&tool.err, STOW_EXIT_FAILURE, "%s failed", argv[index]);
    stow_log_error(&tool.err);
    return rc == 0 ? 0 : tool.err.exit_code;
}
