/* libFuzzer target: the S3 and RDS XML response parsers (error bodies,
 * ListObjectsV2, InitiateMultipartUpload, ListMultipartUploads). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "aws/aws_xml.h"
#include "aws/s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct aws_error_body error_body;
    struct s3_list_page list_page;
    struct s3_uploads_page uploads_page;
    stow_error err = {0};
    char *upload_id = NULL;

    aws_xml_parse_error(data, size, &error_body);

    if (s3_parse_list_objects(data, size, &list_page, &err) == 0)
        s3_list_page_free(&list_page);
    stow_error_clear(&err);

    if (s3_parse_upload_id(data, size, &upload_id, &err) == 0)
        free(upload_id);
    stow_error_clear(&err);

    if (s3_parse_multipart_uploads(data, size, &uploads_page, &err) == 0)
        s3_uploads_page_free(&uploads_page);
    return 0;
}
