/* libFuzzer target: the S3 and RDS XML response parsers. Every input goes
 * to each parser, since a server may send any document in any response. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_xml.h"
#include "aws/rds.h"
#include "aws/s3.h"

static void fuzz_s3_parsers(const uint8_t *data, size_t size)
{
    struct s3_list_page list_page;
    struct s3_uploads_page uploads_page;
    struct s3_versions_page versions_page;
    stow_error err = {0};
    char *upload_id = NULL;
    char etag[S3_ETAG_MAX];
    uint8_t sha256[32];
    int flag = 0;

    if (s3_parse_list_objects(data, size, &list_page, &err) == 0)
        s3_list_page_free(&list_page);
    stow_error_clear(&err);

    if (s3_parse_upload_id(data, size, &upload_id, &err) == 0)
        free(upload_id);
    stow_error_clear(&err);

    if (s3_parse_multipart_uploads(data, size, &uploads_page, &err) == 0)
        s3_uploads_page_free(&uploads_page);
    stow_error_clear(&err);

    memset(&versions_page, 0, sizeof versions_page);
    if (s3_parse_object_versions(data, size, &versions_page, &err) == 0)
        s3_versions_page_free(&versions_page);
    stow_error_clear(&err);

    s3_parse_copy_result(data, size, etag, sha256, &flag, &err);
    stow_error_clear(&err);
    s3_parse_object_lock_configuration(data, size, &flag, &err);
    stow_error_clear(&err);
}

static void fuzz_rds_parsers(const uint8_t *data, size_t size)
{
    struct rds_snapshot_list snapshots;
    struct rds_instance_list instances;
    struct rds_snapshot snapshot;
    struct rds_instance instance;
    struct rds_tag_list tags;
    stow_error err = {0};
    char *marker = NULL;

    for (int cluster = 0; cluster <= 1; cluster++) {
        memset(&snapshots, 0, sizeof snapshots);
        if (rds_parse_snapshots(data, size, cluster, &snapshots, &marker, &err) == 0) {
            rds_snapshot_list_free(&snapshots);
            free(marker);
            marker = NULL;
        }
        stow_error_clear(&err);

        memset(&snapshot, 0, sizeof snapshot);
        if (rds_parse_snapshot_result(data, size, "CopyDBSnapshot", cluster, &snapshot, &err) == 0)
            rds_snapshot_free(&snapshot);
        stow_error_clear(&err);
    }

    memset(&instances, 0, sizeof instances);
    if (rds_parse_instances(data, size, &instances, &marker, &err) == 0) {
        rds_instance_list_free(&instances);
        free(marker);
    }
    stow_error_clear(&err);

    memset(&instance, 0, sizeof instance);
    if (rds_parse_instance_result(data, size, "RestoreDBInstanceFromDBSnapshot", &instance,
                                  &err) == 0)
        rds_instance_free(&instance);
    stow_error_clear(&err);

    memset(&tags, 0, sizeof tags);
    if (rds_parse_tags(data, size, &tags, &err) == 0)
        rds_tag_list_free(&tags);
    stow_error_clear(&err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aws_error_body error_body;

    aws_xml_parse_error(data, size, &error_body);
    fuzz_s3_parsers(data, size);
    fuzz_rds_parsers(data, size);
    return 0;
}
