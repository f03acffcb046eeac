/* AWS XML error conversion and the S3 response parsers on sample bodies in
 * the shapes that S3, RDS and moto send. */
#include "unit.h"

#include <libxml/parser.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_xml.h"
#include "aws/s3.h"

static const char s3_no_such_bucket[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message>"
    "<BucketName>nobucket</BucketName><RequestId>4442587FB7D0A2F9</RequestId>"
    "<HostId>abc=</HostId></Error>";

static const char rds_snapshot_not_found[] =
    "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">\n"
    "  <Error>\n    <Type>Sender</Type>\n    <Code>DBSnapshotNotFound</Code>\n"
    "    <Message>DBSnapshot nightly-1 not found.</Message>\n  </Error>\n"
    "  <RequestId>523e3218-afc7-11c3-90f5-f90431260ab4</RequestId>\n</ErrorResponse>\n";

static const char auth_failure[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ErrorResponse>\n  <Errors>\n    <Error>\n"
    "      <Code>InvalidClientTokenId</Code>\n"
    "      <Message>The security token included in the request is invalid.</Message>\n"
    "    </Error>\n  </Errors>\n</ErrorResponse>";

static const char ec2_throttled[] =
    "<Response><Errors><Error><Code>RequestLimitExceeded</Code>"
    "<Message>Request limit exceeded.</Message></Error></Errors>"
    "<RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>";

static void test_parse_s3_error(void)
{
    struct aws_error_body error;

    CHECK_INT_EQ(0, aws_xml_parse_error(s3_no_such_bucket, strlen(s3_no_such_bucket), &error));
    CHECK_STR_EQ("NoSuchBucket", error.code);
    CHECK_STR_EQ("The specified bucket does not exist", error.message);
    CHECK_STR_EQ("4442587FB7D0A2F9", error.request_id);
}

static void test_parse_query_api_error(void)
{
    struct aws_error_body error;

    CHECK_INT_EQ(0, aws_xml_parse_error(rds_snapshot_not_found, strlen(rds_snapshot_not_found),
                                        &error));
    CHECK_STR_EQ("DBSnapshotNotFound", error.code);
    CHECK_STR_EQ("DBSnapshot nightly-1 not found.", error.message);
    CHECK_STR_EQ("523e3218-afc7-11c3-90f5-f90431260ab4", error.request_id);
}

static void test_parse_errors_list_error(void)
{
    struct aws_error_body error;

    CHECK_INT_EQ(0, aws_xml_parse_error(auth_failure, strlen(auth_failure), &error));
    CHECK_STR_EQ("InvalidClientTokenId", error.code);
    CHECK_STR_EQ("The security token included in the request is invalid.", error.message);
    CHECK_STR_EQ("", error.request_id);

    CHECK_INT_EQ(0, aws_xml_parse_error(ec2_throttled, strlen(ec2_throttled), &error));
    CHECK_STR_EQ("RequestLimitExceeded", error.code);
}

static void test_parse_rejects_non_errors(void)
{
    static const char html[] = "<!DOCTYPE html><html><body><h1>500 Internal Server Error</h1>";
    static const char no_code[] = "<Error><Message>no code here</Message></Error>";
    static const char listing[] = "<ListBucketResult><Name>b</Name></ListBucketResult>";
    struct aws_error_body error;

    CHECK_INT_EQ(-1, aws_xml_parse_error(html, strlen(html), &error));
    CHECK_STR_EQ("", error.code);
    CHECK_INT_EQ(-1, aws_xml_parse_error(no_code, strlen(no_code), &error));
    CHECK_INT_EQ(-1, aws_xml_parse_error(listing, strlen(listing), &error));
    CHECK_INT_EQ(-1, aws_xml_parse_error("", 0, &error));
    CHECK_INT_EQ(-1, aws_xml_parse_error(NULL, 0, &error));
    CHECK_INT_EQ(-1, aws_xml_parse_error("<Error><Code>x", 14, &error));
}

/* An external entity must not be loaded into the parsed fields. */
static void test_parse_ignores_external_entity(void)
{
    static const char body[] =
        "<?xml version=\"1.0\"?><!DOCTYPE Error [<!ENTITY secret SYSTEM \"file:///etc/passwd\">]>"
        "<Error><Code>AccessDenied</Code><Message>x&secret;y</Message></Error>";
    struct aws_error_body error;

    aws_xml_parse_error(body, strlen(body), &error);
    CHECK(strstr(error.message, "root:") == NULL);
}

static void test_long_message_truncated_safely(void)
{
    char body[4096];
    char message[2000];
    struct aws_error_body error;

    memset(message, 'm', sizeof message - 1);
    message[sizeof message - 1] = '\0';
    snprintf(body, sizeof body, "<Error><Code>SlowDown</Code><Message>%s</Message></Error>",
             message);
    CHECK_INT_EQ(0, aws_xml_parse_error(body, strlen(body), &error));
    CHECK_STR_EQ("SlowDown", error.code);
    CHECK_INT_EQ(AWS_ERROR_MESSAGE_MAX - 1, strlen(error.message));
    CHECK(strspn(error.message, "m") == AWS_ERROR_MESSAGE_MAX - 1);
}

static void test_fail_response_no_such_bucket(void)
{
    struct aws_error_body error;
    struct aws_failure failure = {"S3", "PutObject", "bucket nobucket key a/b", 404, &error, 1};
    stow_error err;

    stow_error_clear(&err);
    aws_xml_parse_error(s3_no_such_bucket, strlen(s3_no_such_bucket), &error);
    CHECK_INT_EQ(-1, aws_xml_fail_response(&err, &failure));
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_STR_EQ("S3 PutObject failed for bucket nobucket key a/b: HTTP 404 NoSuchBucket: The "
                 "specified bucket does not exist (request id 4442587FB7D0A2F9)",
                 err.message);
    CHECK_STR_EQ("create the bucket or fix --repo", err.hint);
}

static void test_fail_response_credentials_hint(void)
{
    struct aws_error_body error = {.code = "SignatureDoesNotMatch",
                                   .message = "The request signature we calculated does not "
                                              "match"};
    struct aws_failure failure = {"S3", "ListObjectsV2", "bucket b", 403, &error, 1};
    stow_error err;

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "HTTP 403 SignatureDoesNotMatch");
    CHECK_CONTAINS(err.hint, "check the AWS credentials");

    stow_error_clear(&err);
    snprintf(error.code, sizeof error.code, "InvalidAccessKeyId");
    aws_xml_fail_response(&err, &failure);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "AWS_ACCESS_KEY_ID");
}

static void test_fail_response_names_region(void)
{
    static const char redirect[] =
        "<Error><Code>PermanentRedirect</Code><Message>The bucket you are attempting to access "
        "must be addressed using the specified endpoint.</Message>"
        "<Endpoint>b.s3.ap-south-1.amazonaws.com</Endpoint><Bucket>b</Bucket></Error>";
    static const char malformed[] =
        "<Error><Code>AuthorizationHeaderMalformed</Code><Message>the region 'us-east-1' is "
        "wrong; expecting 'eu-west-1'</Message><Region>eu-west-1</Region></Error>";
    struct aws_error_body error;
    struct aws_failure failure = {"S3", "ListObjectsV2", "bucket b", 301, &error, 1};
    stow_error err;

    CHECK_INT_EQ(0, aws_xml_parse_error(redirect, strlen(redirect), &error));
    CHECK_STR_EQ("b.s3.ap-south-1.amazonaws.com", error.endpoint);
    CHECK_STR_EQ("", error.region);
    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "b.s3.ap-south-1.amazonaws.com");

    /* The x-amz-bucket-region header, copied in by the HTTP engine. */
    snprintf(error.region, sizeof error.region, "ap-south-1");
    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_CONTAINS(err.hint, "set --region ap-south-1");

    CHECK_INT_EQ(0, aws_xml_parse_error(malformed, strlen(malformed), &error));
    CHECK_STR_EQ("eu-west-1", error.region);
    failure.status = 400;
    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_CONTAINS(err.hint, "set --region eu-west-1");

    failure.status = 301;
    failure.error = NULL;
    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "set --region to the bucket's region");
}

static void test_fail_response_after_retries(void)
{
    struct aws_error_body error = {.code = "SlowDown",
                                   .message = "Please reduce your request rate.",
                                   .request_id = "R1"};
    struct aws_failure failure = {"S3", "UploadPart", "bucket b key k part 3 upload id U", 503,
                                  &error, 8};
    stow_error err;

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
    CHECK_STR_EQ("S3 UploadPart failed for bucket b key k part 3 upload id U: HTTP 503 SlowDown: "
                 "Please reduce your request rate. (after 8 attempts, request id R1)",
                 err.message);
}

static void test_fail_response_without_body(void)
{
    struct aws_failure forbidden = {"S3", "HeadObject", "bucket b key k", 403, NULL, 1};
    struct aws_failure server = {"RDS", "DescribeDBInstances", NULL, 500, NULL, 1};
    stow_error err;

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &forbidden);
    CHECK_STR_EQ("S3 HeadObject failed for bucket b key k: HTTP 403 without an AWS error code",
                 err.message);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "IAM permissions for S3");

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &server);
    CHECK_STR_EQ("RDS DescribeDBInstances failed: HTTP 500 without an AWS error code", err.message);
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
}

static void test_fail_response_from_another_server(void)
{
    /* A web server that is not S3 at --endpoint: a 404 with no AWS code.
     * A HEAD's 404 has no body on S3 itself, so it gets no such hint. */
    struct aws_failure listing = {"S3", "ListObjectsV2", "bucket b", 404, NULL, 1};
    struct aws_failure head = {"S3", "HeadObject", "bucket b key k", 404, NULL, 1};
    stow_error err;

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &listing);
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "check that --endpoint names the S3 service");

    stow_error_clear(&err);
    aws_xml_fail_response(&err, &head);
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
    CHECK_STR_EQ("", err.hint);
}

static void test_fail_response_keeps_first_error(void)
{
    struct aws_failure failure = {"S3", "GetObject", "bucket b key k", 500, NULL, 1};
    stow_error err;

    stow_error_clear(&err);
    stow_fail(&err, STOW_EXIT_VERIFY, "earlier failure");
    aws_xml_fail_response(&err, &failure);
    CHECK_STR_EQ("earlier failure", err.message);
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
}

static void test_retryable_classification(void)
{
    CHECK_INT_EQ(1, aws_error_is_retryable(503, "SlowDown"));
    CHECK_INT_EQ(1, aws_error_is_retryable(500, ""));
    CHECK_INT_EQ(1, aws_error_is_retryable(429, NULL));
    CHECK_INT_EQ(1, aws_error_is_retryable(400, "Throttling"));
    CHECK_INT_EQ(1, aws_error_is_retryable(400, "RequestTimeout"));
    CHECK_INT_EQ(1, aws_error_is_retryable(400, "ExpiredToken"));
    CHECK_INT_EQ(1, aws_error_is_retryable(200, "InternalError"));
    CHECK_INT_EQ(0, aws_error_is_retryable(403, "AccessDenied"));
    CHECK_INT_EQ(0, aws_error_is_retryable(404, "NoSuchBucket"));
    CHECK_INT_EQ(0, aws_error_is_retryable(400, "InvalidArgument"));
    CHECK_INT_EQ(0, aws_error_is_retryable(403, "SignatureDoesNotMatch"));
    CHECK_INT_EQ(0, aws_error_is_retryable(403, "InvalidAccessKeyId"));
    CHECK_INT_EQ(1, aws_error_is_expired_token("ExpiredToken"));
    CHECK_INT_EQ(0, aws_error_is_expired_token("InvalidToken"));
}

static void test_parse_time(void)
{
    time_t parsed = 0;

    CHECK_INT_EQ(0, aws_xml_parse_time("2009-10-12T17:50:30.000Z", &parsed));
    CHECK_INT_EQ(1255369830, parsed);
    CHECK_INT_EQ(-1, aws_xml_parse_time("yesterday", &parsed));
}

static const char list_page_one[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>backups</Name><Prefix>nightly%2F</Prefix><KeyCount>3</KeyCount>"
    "<MaxKeys>1000</MaxKeys><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
    "<NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>"
    "<Contents><Key>nightly%2Fa+b%2Bc.txt</Key>"
    "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>"
    "<Contents><Key>nightly%2Fcaf%C3%A9</Key><LastModified>2009-10-12T17:50:31.000Z</LastModified>"
    "<ETag>&quot;e&quot;</ETag><Size>0</Size></Contents>"
    "<Contents><Key>nightly%2F%7Ex</Key><Size>18446744073709551615</Size></Contents>"
    "</ListBucketResult>";

static void test_parse_list_objects(void)
{
    struct s3_list_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_list_objects(list_page_one, strlen(list_page_one), &page, &err));
    CHECK_INT_EQ(3, page.count);
    CHECK_INT_EQ(1, page.truncated);
    CHECK_STR_EQ("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=", page.next_token);
    CHECK_STR_EQ("nightly/a b+c.txt", page.entries[0].key);
    CHECK_INT_EQ(434234, page.entries[0].info.size);
    CHECK_INT_EQ(1255369830, page.entries[0].info.modified);
    CHECK_STR_EQ("\"fba9dede5f27731c9771645a39863328\"", page.entries[0].info.etag);
    CHECK_STR_EQ("nightly/caf\xc3\xa9", page.entries[1].key);
    CHECK_INT_EQ(0, page.entries[1].info.size);
    CHECK_STR_EQ("nightly/~x", page.entries[2].key);
    CHECK(page.entries[2].info.size == UINT64_MAX);
    s3_list_page_free(&page);
}

static void test_parse_list_without_encoding(void)
{
    static const char body[] =
        "<ListBucketResult><IsTruncated>false</IsTruncated>"
        "<Contents><Key>a+b%2B</Key><Size>1</Size></Contents></ListBucketResult>";
    struct s3_list_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_list_objects(body, strlen(body), &page, &err));
    CHECK_INT_EQ(1, page.count);
    CHECK_INT_EQ(0, page.truncated);
    CHECK(page.next_token == NULL);
    CHECK_STR_EQ("a+b%2B", page.entries[0].key);
    s3_list_page_free(&page);
}

static void test_parse_list_empty(void)
{
    static const char body[] = "<ListBucketResult><KeyCount>0</KeyCount>"
                               "<IsTruncated>false</IsTruncated></ListBucketResult>";
    struct s3_list_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_list_objects(body, strlen(body), &page, &err));
    CHECK_INT_EQ(0, page.count);
    s3_list_page_free(&page);
}

static void test_parse_list_rejects_bad_documents(void)
{
    static const char missing_key[] =
        "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>";
    static const char nul_key[] = "<ListBucketResult><EncodingType>url</EncodingType>"
                                  "<Contents><Key>a%00b</Key></Contents></ListBucketResult>";
    struct s3_list_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_list_objects(s3_no_such_bucket, strlen(s3_no_such_bucket), &page,
                                           &err));
    CHECK_STR_EQ("response is not a ListBucketResult XML document", err.message);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_list_objects("<ListBucketResult>", 18, &page, &err));

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_list_objects(missing_key, strlen(missing_key), &page, &err));
    CHECK_CONTAINS(err.message, "without a Key");

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_list_objects(nul_key, strlen(nul_key), &page, &err));
    CHECK_CONTAINS(err.message, "NUL byte");
}

static void test_parse_upload_id(void)
{
    static const char body[] =
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>example-bucket</Bucket><Key>example-object</Key>"
        "<UploadId>VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
        "</InitiateMultipartUploadResult>";
    static const char empty[] =
        "<InitiateMultipartUploadResult><UploadId></UploadId></InitiateMultipartUploadResult>";
    char *upload_id = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_upload_id(body, strlen(body), &upload_id, &err));
    CHECK_STR_EQ("VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA", upload_id);
    free(upload_id);

    CHECK_INT_EQ(-1, s3_parse_upload_id(empty, strlen(empty), &upload_id, &err));
    CHECK(upload_id == NULL);
    CHECK_STR_EQ("response has no UploadId", err.message);
}

static void test_parse_multipart_uploads(void)
{
    static const char body[] =
        "<ListMultipartUploadsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Bucket>bucket</Bucket><NextKeyMarker>my-movie.m2ts</NextKeyMarker>"
        "<NextUploadIdMarker>YW55IGlkZWEgd2h5</NextUploadIdMarker>"
        "<EncodingType>url</EncodingType><IsTruncated>true</IsTruncated>"
        "<Upload><Key>nightly%2Fdb+1</Key>"
        "<UploadId>XXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA</UploadId>"
        "<Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>"
        "<Upload><Key>b</Key><UploadId>u2</UploadId></Upload>"
        "</ListMultipartUploadsResult>";
    struct s3_uploads_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_multipart_uploads(body, strlen(body), &page, &err));
    CHECK_INT_EQ(2, page.count);
    CHECK_INT_EQ(1, page.truncated);
    CHECK_STR_EQ("my-movie.m2ts", page.next_key_marker);
    CHECK_STR_EQ("YW55IGlkZWEgd2h5", page.next_upload_id_marker);
    CHECK_STR_EQ("nightly/db 1", page.entries[0].key);
    CHECK_STR_EQ("XXBsb2FkIElEIGZvciBlbHZpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA",
                 page.entries[0].upload_id);
    CHECK_INT_EQ(1289422113, page.entries[0].initiated);
    CHECK_STR_EQ("u2", page.entries[1].upload_id);
    CHECK_INT_EQ(0, page.entries[1].initiated);
    s3_uploads_page_free(&page);
}

/* The built document parses back with the part numbers, ETags (quotes and
 * all) and base64 checksums in order. */
static void test_build_complete_body(void)
{
    struct s3_completed_part parts[2];
    stow_buf body;
    stow_error err;
    xmlDoc *doc;
    xmlNode *root;
    xmlNode *part;
    char text[128];

    memset(parts, 0, sizeof parts);
    parts[0].number = 1;
    snprintf(parts[0].etag, sizeof parts[0].etag, "\"a54357aff0632cce46d942af68356b38\"");
    parts[1].number = 2;
    snprintf(parts[1].etag, sizeof parts[1].etag, "\"<&>\"");
    memset(parts[1].sha256, 0xff, sizeof parts[1].sha256);

    stow_error_clear(&err);
    stow_buf_init(&body, 1 << 16);
    CHECK_INT_EQ(0, s3_build_complete_body(parts, 2, &body, &err));
    CHECK_CONTAINS((const char *)body.data,
                   "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");

    doc = aws_xml_read(body.data, body.len);
    root = xmlDocGetRootElement(doc);
    CHECK(aws_xml_is(root, "CompleteMultipartUpload"));
    part = aws_xml_child(root, "Part");
    CHECK_INT_EQ(0, aws_xml_child_text(part, "PartNumber", text, sizeof text));
    CHECK_STR_EQ("1", text);
    CHECK_INT_EQ(0, aws_xml_child_text(part, "ETag", text, sizeof text));
    CHECK_STR_EQ("\"a54357aff0632cce46d942af68356b38\"", text);
    CHECK_INT_EQ(0, aws_xml_child_text(part, "ChecksumSHA256", text, sizeof text));
    CHECK_STR_EQ("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", text);

    part = part->next;
    while (part != NULL && !aws_xml_is(part, "Part"))
        part = part->next;
    CHECK_INT_EQ(0, aws_xml_child_text(part, "ETag", text, sizeof text));
    CHECK_STR_EQ("\"<&>\"", text);
    CHECK_INT_EQ(0, aws_xml_child_text(part, "ChecksumSHA256", text, sizeof text));
    CHECK_STR_EQ("//////////////////////////////////////////8=", text);

    xmlFreeDoc(doc);
    stow_buf_free(&body);
}

/* Versions and delete markers come back in document order, keys decoded. */
static void test_parse_object_versions(void)
{
    static const char body[] =
        "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<Name>bucket</Name><Prefix>x/</Prefix><EncodingType>url</EncodingType>"
        "<IsTruncated>true</IsTruncated><NextKeyMarker>x%2Fb</NextKeyMarker>"
        "<NextVersionIdMarker>v3</NextVersionIdMarker>"
        "<Version><Key>x%2Fa+b</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest>"
        "<Size>10</Size></Version>"
        "<DeleteMarker><Key>x%2Fb</Key><VersionId>v2</VersionId></DeleteMarker>"
        "<Version><Key>x%2Fb</Key><VersionId>null</VersionId></Version>"
        "</ListVersionsResult>";
    struct s3_versions_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_object_versions(body, strlen(body), &page, &err));
    CHECK_INT_EQ(3, page.count);
    CHECK_INT_EQ(1, page.truncated);
    CHECK_STR_EQ("x%2Fb", page.next_key_marker);
    CHECK_STR_EQ("v3", page.next_version_id_marker);
    CHECK_STR_EQ("x/a b", page.entries[0].key);
    CHECK_STR_EQ("v1", page.entries[0].version_id);
    CHECK_INT_EQ(0, page.entries[0].delete_marker);
    CHECK_STR_EQ("x/b", page.entries[1].key);
    CHECK_INT_EQ(1, page.entries[1].delete_marker);
    CHECK_STR_EQ("null", page.entries[2].version_id);
    CHECK_INT_EQ(0, page.entries[2].delete_marker);
    s3_versions_page_free(&page);
}

static void test_parse_versions_rejects_bad_documents(void)
{
    static const char no_version_id[] =
        "<ListVersionsResult><Version><Key>a</Key></Version></ListVersionsResult>";
    static const char wrong_root[] = "<ListBucketResult></ListBucketResult>";
    struct s3_versions_page page;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_object_versions(no_version_id, strlen(no_version_id), &page, &err));
    CHECK_CONTAINS(err.message, "without Key or VersionId");
    CHECK_INT_EQ(0, page.count);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, s3_parse_object_versions(wrong_root, strlen(wrong_root), &page, &err));
    CHECK_CONTAINS(err.message, "ListVersionsResult");
}

static void test_parse_object_lock_configuration(void)
{
    static const char enabled[] =
        "<ObjectLockConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
        "<ObjectLockEnabled>Enabled</ObjectLockEnabled><Rule><DefaultRetention>"
        "<Mode>GOVERNANCE</Mode><Days>1</Days></DefaultRetention></Rule>"
        "</ObjectLockConfiguration>";
    static const char without_status[] = "<ObjectLockConfiguration/>";
    static const char wrong_root[] = "<Error><Code>x</Code></Error>";
    stow_error err;
    int on = -1;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, s3_parse_object_lock_configuration(enabled, strlen(enabled), &on, &err));
    CHECK_INT_EQ(1, on);
    CHECK_INT_EQ(0, s3_parse_object_lock_configuration(without_status, strlen(without_status),
                                                       &on, &err));
    CHECK_INT_EQ(0, on);
    CHECK_INT_EQ(-1, s3_parse_object_lock_configuration(wrong_root, strlen(wrong_root), &on,
                                                        &err));
    CHECK_INT_EQ(0, on);
}

static void test_build_retention_body(void)
{
    struct s3_retention retention = {"COMPLIANCE", 1796428800}; /* 2026-12-05T00:00:00Z */
    stow_buf body;
    stow_error err;
    xmlDoc *doc;
    xmlNode *root;
    char text[64];

    stow_error_clear(&err);
    stow_buf_init(&body, 4096);
    CHECK_INT_EQ(0, s3_build_retention_body(&retention, &body, &err));
    CHECK_CONTAINS((const char *)body.data,
                   "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
    doc = aws_xml_read(body.data, body.len);
    root = xmlDocGetRootElement(doc);
    CHECK(aws_xml_is(root, "Retention"));
    CHECK_INT_EQ(0, aws_xml_child_text(root, "Mode", text, sizeof text));
    CHECK_STR_EQ("COMPLIANCE", text);
    CHECK_INT_EQ(0, aws_xml_child_text(root, "RetainUntilDate", text, sizeof text));
    CHECK_STR_EQ("2026-12-05T00:00:00Z", text);
    xmlFreeDoc(doc);
    stow_buf_free(&body);
}

int main(void)
{
    unit_run("parse s3 error", test_parse_s3_error);
    unit_run("parse query api error", test_parse_query_api_error);
    unit_run("parse errors list error", test_parse_errors_list_error);
    unit_run("parse rejects non-errors", test_parse_rejects_non_errors);
    unit_run("parse ignores external entity", test_parse_ignores_external_entity);
    unit_run("long message truncated safely", test_long_message_truncated_safely);
    unit_run("fail response no such bucket", test_fail_response_no_such_bucket);
    unit_run("fail response credentials hint", test_fail_response_credentials_hint);
    unit_run("fail response names region", test_fail_response_names_region);
    unit_run("fail response after retries", test_fail_response_after_retries);
    unit_run("fail response without body", test_fail_response_without_body);
    unit_run("failure from a server that is not S3", test_fail_response_from_another_server);
    unit_run("fail response keeps first error", test_fail_response_keeps_first_error);
    unit_run("retryable classification", test_retryable_classification);
    unit_run("parse time", test_parse_time);
    unit_run("parse list objects", test_parse_list_objects);
    unit_run("parse list without encoding", test_parse_list_without_encoding);
    unit_run("parse list empty", test_parse_list_empty);
    unit_run("parse list rejects bad documents", test_parse_list_rejects_bad_documents);
    unit_run("parse upload id", test_parse_upload_id);
    unit_run("parse multipart uploads", test_parse_multipart_uploads);
    unit_run("build complete body", test_build_complete_body);
    unit_run("parse object versions", test_parse_object_versions);
    unit_run("parse versions rejects bad documents", test_parse_versions_rejects_bad_documents);
    unit_run("parse object lock configuration", test_parse_object_lock_configuration);
    unit_run("build retention body", test_build_retention_body);
    return unit_finish();
}
