/* RDS client: the response parsers on bodies in the shapes that RDS and
 * moto send, error advice, form encoding, and the signature and pre-signed
 * URL compared with values that botocore 1.43.11 computed for the same
 * requests at the same time. */
#include "unit.h"

#include <stdlib.h>
#include <string.h>

#include "aws/aws_xml.h"
#include "aws/rds.h"

/* 2026-12-04T03:00:00Z */
#define FIXED_TIME 1796353200

static const char snapshots_page[] =
    "<DescribeDBSnapshotsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">"
    "<DescribeDBSnapshotsResult><DBSnapshots>"
    "<DBSnapshot><DBSnapshotIdentifier>rds:db1-2026-12-04-20-28</DBSnapshotIdentifier>"
    "<DBInstanceIdentifier>db1</DBInstanceIdentifier>"
    "<SnapshotCreateTime>2026-12-04T20:28:30.724828Z</SnapshotCreateTime>"
    "<Engine>postgres</Engine><AllocatedStorage>20</AllocatedStorage>"
    "<Status>available</Status><EngineVersion>15.4</EngineVersion>"
    "<SnapshotType>automated</SnapshotType><Encrypted>false</Encrypted>"
    "<DBSnapshotArn>arn:aws:rds:us-east-1:123456789012:snapshot:rds:db1-2026-12-04-20-28"
    "</DBSnapshotArn><TagList/>"
    "<OriginalSnapshotCreateTime>2026-12-04T20:28:30.724828Z</OriginalSnapshotCreateTime>"
    "</DBSnapshot>"
    "<DBSnapshot><DBSnapshotIdentifier>stowage-db1-20261204-203000</DBSnapshotIdentifier>"
    "<DBInstanceIdentifier>db1</DBInstanceIdentifier>"
    "<SnapshotCreateTime>2026-12-04T20:30:00Z</SnapshotCreateTime>"
    "<Engine>postgres</Engine><AllocatedStorage>100</AllocatedStorage>"
    "<Status>creating</Status><PercentProgress>42</PercentProgress>"
    "<EngineVersion>15.4</EngineVersion><SnapshotType>manual</SnapshotType>"
    "<Encrypted>true</Encrypted>"
    "<KmsKeyId>arn:aws:kms:us-east-1:123456789012:key/abcd</KmsKeyId>"
    "<DBSnapshotArn>arn:aws:rds:us-east-1:123456789012:snapshot:stowage-db1-20261204-203000"
    "</DBSnapshotArn><TagList><Tag><Key>stowage:created-by</Key><Value>stowage</Value></Tag>"
    "<Tag><Key>empty</Key><Value></Value></Tag></TagList></DBSnapshot>"
    "</DBSnapshots><Marker>next-page</Marker></DescribeDBSnapshotsResult>"
    "<ResponseMetadata><RequestId>abc</RequestId></ResponseMetadata>"
    "</DescribeDBSnapshotsResponse>";

static const char cluster_snapshots[] =
    "<DescribeDBClusterSnapshotsResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">"
    "<DescribeDBClusterSnapshotsResult><DBClusterSnapshots><DBClusterSnapshot>"
    "<DBClusterSnapshotIdentifier>cs1</DBClusterSnapshotIdentifier>"
    "<DBClusterIdentifier>cl1</DBClusterIdentifier>"
    "<SnapshotCreateTime>2026-12-04T20:28:46.105861Z</SnapshotCreateTime>"
    "<Engine>aurora-postgresql</Engine><AllocatedStorage>1</AllocatedStorage>"
    "<Status>available</Status><EngineVersion>12.7</EngineVersion>"
    "<SnapshotType>manual</SnapshotType><PercentProgress>100</PercentProgress>"
    "<StorageEncrypted>false</StorageEncrypted><KmsKeyId>default_kms_key_id</KmsKeyId>"
    "<DBClusterSnapshotArn>arn:aws:rds:us-east-1:123456789012:cluster-snapshot:cs1"
    "</DBClusterSnapshotArn><TagList><Tag><Key>a</Key><Value>b</Value></Tag></TagList>"
    "</DBClusterSnapshot></DBClusterSnapshots></DescribeDBClusterSnapshotsResult>"
    "</DescribeDBClusterSnapshotsResponse>";

static const char instances_page[] =
    "<DescribeDBInstancesResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\">"
    "<DescribeDBInstancesResult><DBInstances><DBInstance>"
    "<DBInstanceIdentifier>stowage-scratch-0a1b2c3d4e5f</DBInstanceIdentifier>"
    "<DBInstanceClass>db.t3.micro</DBInstanceClass><Engine>postgres</Engine>"
    "<DBInstanceStatus>available</DBInstanceStatus><MasterUsername>admin</MasterUsername>"
    "<Endpoint><Address>scratch.aaaa.us-east-1.rds.amazonaws.com</Address><Port>5433</Port>"
    "</Endpoint><AllocatedStorage>20</AllocatedStorage>"
    "<InstanceCreateTime>2026-12-04T20:28:30.106184Z</InstanceCreateTime>"
    "<LatestRestorableTime>2026-12-04T21:00:00Z</LatestRestorableTime>"
    "<EngineVersion>15.4</EngineVersion><PubliclyAccessible>false</PubliclyAccessible>"
    "<StorageEncrypted>true</StorageEncrypted>"
    "<DBInstanceArn>arn:aws:rds:us-east-1:123456789012:db:stowage-scratch-0a1b2c3d4e5f"
    "</DBInstanceArn><TagList><Tag><Key>stowage:scratch</Key><Value>true</Value></Tag>"
    "<Tag><Key>stowage:expires-at</Key><Value>2026-12-05T02:28:30Z</Value></Tag></TagList>"
    "</DBInstance><DBInstance><DBInstanceIdentifier>creating</DBInstanceIdentifier>"
    "<DBInstanceStatus>creating</DBInstanceStatus></DBInstance></DBInstances>"
    "<Marker>eyJtYXJrZXIiOiAxfQ==</Marker></DescribeDBInstancesResult>"
    "</DescribeDBInstancesResponse>";

static void test_parse_snapshots(void)
{
    struct rds_snapshot_list list;
    char *marker = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, rds_parse_snapshots(snapshots_page, strlen(snapshots_page), 0, &list,
                                        &marker, &err));
    CHECK_INT_EQ(2, list.count);
    CHECK_STR_EQ("next-page", marker);

    CHECK_STR_EQ("rds:db1-2026-12-04-20-28", list.items[0].id);
    CHECK_STR_EQ("db1", list.items[0].source_id);
    CHECK_STR_EQ("automated", list.items[0].snapshot_type);
    CHECK_INT_EQ(1796416110, list.items[0].created);
    CHECK_INT_EQ(1796416110, list.items[0].original_created);
    CHECK_INT_EQ(0, list.items[1].original_created);
    CHECK_INT_EQ(20, list.items[0].allocated_storage_gib);
    CHECK_INT_EQ(0, list.items[0].encrypted);
    CHECK_INT_EQ(-1, list.items[0].percent_progress);
    CHECK_INT_EQ(1, list.items[0].tags.present);
    CHECK_INT_EQ(0, list.items[0].tags.count);

    CHECK_STR_EQ("creating", list.items[1].status);
    CHECK_INT_EQ(42, list.items[1].percent_progress);
    CHECK_INT_EQ(1, list.items[1].encrypted);
    CHECK_STR_EQ("arn:aws:kms:us-east-1:123456789012:key/abcd", list.items[1].kms_key_id);
    CHECK_STR_EQ("arn:aws:rds:us-east-1:123456789012:snapshot:stowage-db1-20261204-203000",
                 list.items[1].arn);
    CHECK_INT_EQ(2, list.items[1].tags.count);
    CHECK_STR_EQ("stowage", rds_tag_value(&list.items[1].tags, "stowage:created-by"));
    CHECK_STR_EQ("", rds_tag_value(&list.items[1].tags, "empty"));
    CHECK(rds_tag_value(&list.items[1].tags, "missing") == NULL);

    rds_snapshot_list_free(&list);
    free(marker);
}

static void test_parse_cluster_snapshots(void)
{
    struct rds_snapshot_list list;
    char *marker = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, rds_parse_snapshots(cluster_snapshots, strlen(cluster_snapshots), 1, &list,
                                        &marker, &err));
    CHECK_INT_EQ(1, list.count);
    CHECK(marker == NULL);
    CHECK_INT_EQ(1, list.items[0].cluster);
    CHECK_STR_EQ("cs1", list.items[0].id);
    CHECK_STR_EQ("cl1", list.items[0].source_id);
    CHECK_STR_EQ("arn:aws:rds:us-east-1:123456789012:cluster-snapshot:cs1", list.items[0].arn);
    /* An unencrypted cluster snapshot reports a placeholder key; it is dropped. */
    CHECK_STR_EQ("", list.items[0].kms_key_id);
    CHECK_INT_EQ(100, list.items[0].percent_progress);
    rds_snapshot_list_free(&list);
}

static void test_parse_instances(void)
{
    struct rds_instance_list list;
    char *marker = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, rds_parse_instances(instances_page, strlen(instances_page), &list, &marker,
                                        &err));
    CHECK_INT_EQ(2, list.count);
    CHECK_STR_EQ("eyJtYXJrZXIiOiAxfQ==", marker);
    CHECK_STR_EQ("stowage-scratch-0a1b2c3d4e5f", list.items[0].id);
    CHECK_STR_EQ("scratch.aaaa.us-east-1.rds.amazonaws.com", list.items[0].endpoint_address);
    CHECK_INT_EQ(5433, list.items[0].endpoint_port);
    CHECK_STR_EQ("admin", list.items[0].master_username);
    CHECK_STR_EQ("db.t3.micro", list.items[0].instance_class);
    CHECK_INT_EQ(0, list.items[0].publicly_accessible);
    CHECK_INT_EQ(1, list.items[0].encrypted);
    CHECK_INT_EQ(1796418000, list.items[0].latest_restorable);
    CHECK_STR_EQ("true", rds_tag_value(&list.items[0].tags, RDS_TAG_SCRATCH));
    CHECK_STR_EQ("2026-12-05T02:28:30Z", rds_tag_value(&list.items[0].tags, RDS_TAG_EXPIRES_AT));

    /* An instance still being created has no endpoint and no TagList. */
    CHECK_STR_EQ("", list.items[1].endpoint_address);
    CHECK_INT_EQ(0, list.items[1].endpoint_port);
    CHECK_INT_EQ(0, list.items[1].tags.present);
    rds_instance_list_free(&list);
    free(marker);
}

static void test_parse_results(void)
{
    static const char restored[] =
        "<RestoreDBInstanceFromDBSnapshotResponse><RestoreDBInstanceFromDBSnapshotResult>"
        "<DBInstance><DBInstanceIdentifier>stowage-scratch-1</DBInstanceIdentifier>"
        "<DBInstanceStatus>creating</DBInstanceStatus></DBInstance>"
        "</RestoreDBInstanceFromDBSnapshotResult></RestoreDBInstanceFromDBSnapshotResponse>";
    static const char created[] =
        "<CreateDBSnapshotResponse><CreateDBSnapshotResult><DBSnapshot>"
        "<DBSnapshotIdentifier>s1</DBSnapshotIdentifier><Status>creating</Status>"
        "</DBSnapshot></CreateDBSnapshotResult></CreateDBSnapshotResponse>";
    static const char tags[] =
        "<ListTagsForResourceResponse><ListTagsForResourceResult><TagList>"
        "<Tag><Key>stowage:scratch</Key><Value>true</Value></Tag></TagList>"
        "</ListTagsForResourceResult></ListTagsForResourceResponse>";
    struct rds_instance instance;
    struct rds_snapshot snapshot;
    struct rds_tag_list tag_list;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, rds_parse_instance_result(restored, strlen(restored),
                                              "RestoreDBInstanceFromDBSnapshot", &instance, &err));
    CHECK_STR_EQ("stowage-scratch-1", instance.id);
    CHECK_STR_EQ("creating", instance.status);
    rds_instance_free(&instance);

    CHECK_INT_EQ(0, rds_parse_snapshot_result(created, strlen(created), "CreateDBSnapshot", 0,
                                              &snapshot, &err));
    CHECK_STR_EQ("s1", snapshot.id);
    CHECK_STR_EQ("creating", snapshot.status);
    rds_snapshot_free(&snapshot);

    CHECK_INT_EQ(0, rds_parse_tags(tags, strlen(tags), &tag_list, &err));
    CHECK_INT_EQ(1, tag_list.count);
    CHECK_STR_EQ("true", rds_tag_value(&tag_list, "stowage:scratch"));
    rds_tag_list_free(&tag_list);
}

static void test_parse_rejects_bad_documents(void)
{
    static const char html[] = "<!doctype html><html><title>500 Internal Server Error</title>";
    static const char other_root[] = "<DescribeDBInstancesResponse/>";
    static const char no_id[] =
        "<DescribeDBSnapshotsResponse><DescribeDBSnapshotsResult><DBSnapshots><DBSnapshot>"
        "<Status>available</Status></DBSnapshot></DBSnapshots></DescribeDBSnapshotsResult>"
        "</DescribeDBSnapshotsResponse>";
    static const char wrong_action[] =
        "<CreateDBSnapshotResponse><CreateDBSnapshotResult/></CreateDBSnapshotResponse>";
    struct rds_snapshot_list list;
    struct rds_snapshot snapshot;
    char *marker = NULL;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, rds_parse_snapshots(html, strlen(html), 0, &list, &marker, &err));
    CHECK_CONTAINS(err.message, "not a DescribeDBSnapshotsResponse document");
    CHECK_INT_EQ(0, list.count);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, rds_parse_snapshots(other_root, strlen(other_root), 0, &list, &marker, &err));

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, rds_parse_snapshots(no_id, strlen(no_id), 0, &list, &marker, &err));
    CHECK_CONTAINS(err.message, "DBSnapshotIdentifier is missing");
    CHECK(list.items == NULL);

    stow_error_clear(&err);
    CHECK_INT_EQ(-1, rds_parse_snapshot_result(wrong_action, strlen(wrong_action),
                                               "CreateDBSnapshot", 0, &snapshot, &err));
    CHECK_CONTAINS(err.message, "no DBSnapshot");
}

/* An identifier longer than RDS allows is rejected, never cut to size. */
static void test_parse_rejects_long_identifier(void)
{
    char body[1024];
    char id[300];
    struct rds_snapshot_list list;
    char *marker = NULL;
    stow_error err;

    memset(id, 'a', sizeof id - 1);
    id[sizeof id - 1] = '\0';
    snprintf(body, sizeof body,
             "<DescribeDBSnapshotsResponse><DescribeDBSnapshotsResult><DBSnapshots><DBSnapshot>"
             "<DBSnapshotIdentifier>%s</DBSnapshotIdentifier></DBSnapshot></DBSnapshots>"
             "</DescribeDBSnapshotsResult></DescribeDBSnapshotsResponse>", id);
    stow_error_clear(&err);
    CHECK_INT_EQ(-1, rds_parse_snapshots(body, strlen(body), 0, &list, &marker, &err));
    CHECK_CONTAINS(err.message, "DBSnapshotIdentifier is longer than 255 bytes");
}

static void test_error_advice(void)
{
    static const char quota[] =
        "<ErrorResponse xmlns=\"http://rds.amazonaws.com/doc/2014-10-31/\"><Error>"
        "<Type>Sender</Type><Code>SnapshotQuotaExceeded</Code>"
        "<Message>Cannot create more than 100 manual snapshots</Message></Error>"
        "<RequestId>r-1</RequestId></ErrorResponse>";
    struct aws_error_body body;
    struct aws_failure failure = {"RDS", "CreateDBSnapshot", "snapshot s of instance db1", 400,
                                  &body, 1};
    stow_error err;

    CHECK_INT_EQ(0, aws_xml_parse_error(quota, strlen(quota), &body));
    stow_error_clear(&err);
    aws_xml_fail_response(&err, &failure);
    rds_error_advise(&err, body.code);
    CHECK_STR_EQ("RDS CreateDBSnapshot failed for snapshot s of instance db1: HTTP 400 "
                 "SnapshotQuotaExceeded: Cannot create more than 100 manual snapshots "
                 "(request id r-1)", err.message);
    CHECK_INT_EQ(STOW_EXIT_FAILURE, err.exit_code);
    CHECK_CONTAINS(err.hint, "stowage snapshot expire");

    rds_error_advise(&err, "DBSnapshotNotFound");
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "snapshot list");

    rds_error_advise(&err, "DBInstanceNotFound");
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.hint, "instance id");

    /* Codes without RDS advice keep what the AWS conversion chose. */
    stow_error_clear(&err);
    stow_fail(&err, STOW_EXIT_STORAGE, "denied");
    rds_error_advise(&err, "SignatureDoesNotMatch");
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
    rds_error_advise(&err, "");
    CHECK_INT_EQ(STOW_EXIT_STORAGE, err.exit_code);
}

static void test_form_encoding(void)
{
    struct rds_params params;
    struct rds_tag tags[] = {{"stowage:source", "db 1/2"}};
    stow_buf body;
    stow_error err;

    stow_error_clear(&err);
    stow_buf_init(&body, 4096);
    rds_params_init(&params);
    CHECK_INT_EQ(0, rds_params_add(&params, "Action", "CreateDBSnapshot", &err));
    CHECK_INT_EQ(0, rds_params_add(&params, "Empty", "", &err));
    CHECK_INT_EQ(0, rds_params_add_tags(&params, tags, 1, &err));
    CHECK_INT_EQ(0, rds_form_encode(params.items, params.count, &body, &err));
    CHECK_STR_EQ("Action=CreateDBSnapshot&Empty=&Tags.Tag.1.Key=stowage%3Asource"
                 "&Tags.Tag.1.Value=db%201%2F2", (const char *)body.data);
    rds_params_free(&params);
    rds_params_free(&params);
    stow_buf_free(&body);
}

static struct aws_credentials example_credentials(void)
{
    struct aws_credentials credentials;

    memset(&credentials, 0, sizeof credentials);
    strcpy(credentials.access_key_id, "AKIDEXAMPLE");
    strcpy(credentials.secret_access_key, "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    return credentials;
}

/* botocore's SigV4Auth signed the same body for rds in us-east-1 at
 * FIXED_TIME with the Content-Type header below. */
static void test_sign_matches_botocore(void)
{
    static const char body[] =
        "Action=CreateDBSnapshot&Version=2014-10-31&DBSnapshotIdentifier="
        "stowage-db1-20261204-030000&DBInstanceIdentifier=db1&Tags.Tag.1.Key="
        "stowage%3Acreated-by&Tags.Tag.1.Value=stowage";
    struct aws_credentials credentials = example_credentials();
    struct rds_signing signing = {"us-east-1", "rds.us-east-1.amazonaws.com", "/", body,
                                  strlen(body), FIXED_TIME, &credentials};
    struct sigv4_signature signature;
    stow_error err;

    stow_error_clear(&err);
    CHECK_INT_EQ(0, rds_sign_form(&signing, &signature, &err));
    CHECK_STR_EQ("20261204T030000Z", signature.amz_date);
    CHECK_STR_EQ("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261204/us-east-1/rds/aws4_request, "
                 "SignedHeaders=content-type;host;x-amz-date, "
                 "Signature=401d64ad8d7652225e31172e77bd52cce1dd756d3842bd4402e8a8658e91111f",
                 signature.authorization);
}

/* botocore built this PreSignedUrl for copy_db_snapshot(SourceRegion=
 * "us-east-1", ...) called in us-west-2 at FIXED_TIME; its query lists the
 * same parameters in request order, with the same signature. */
static void test_presign_copy_matches_botocore(void)
{
    struct aws_credentials credentials = example_credentials();
    struct rds_tag tags[] = {{"stowage:created-by", "stowage"}, {"stowage:source", "db1"}};
    struct rds_copy_snapshot request;
    stow_buf url;
    stow_error err;

    memset(&request, 0, sizeof request);
    request.source_arn = "arn:aws:rds:us-east-1:123456789012:snapshot:stowage-db1-20261204-030000";
    request.source_region = "us-east-1";
    request.source_endpoint = "https://rds.us-east-1.amazonaws.com";
    request.target_id = "stowage-db1-20261204-030000-us-west-2";
    request.kms_key_id = "alias/dr";
    request.tags = tags;
    request.tag_count = 2;
    request.time = FIXED_TIME;

    stow_error_clear(&err);
    stow_buf_init(&url, 1 << 16);
    CHECK_INT_EQ(0, rds_presign_copy_url(&request, "us-west-2", &credentials, &url, &err));
    CHECK_STR_EQ(
        "https://rds.us-east-1.amazonaws.com/?Action=CopyDBSnapshot"
        "&DestinationRegion=us-west-2&KmsKeyId=alias%2Fdr"
        "&SourceDBSnapshotIdentifier=arn%3Aaws%3Ards%3Aus-east-1%3A123456789012%3Asnapshot"
        "%3Astowage-db1-20261204-030000"
        "&Tags.Tag.1.Key=stowage%3Acreated-by&Tags.Tag.1.Value=stowage"
        "&Tags.Tag.2.Key=stowage%3Asource&Tags.Tag.2.Value=db1"
        "&TargetDBSnapshotIdentifier=stowage-db1-20261204-030000-us-west-2"
        "&Version=2014-10-31&X-Amz-Algorithm=AWS4-HMAC-SHA256"
        "&X-Amz-Credential=AKIDEXAMPLE%2F20261204%2Fus-east-1%2Frds%2Faws4_request"
        "&X-Amz-Date=20261204T030000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=8557a9d441319664d0ffd49abe58ac926e0608e1e6d51a0052b858b28f3fac6d",
        (const char *)url.data);
    stow_buf_free(&url);
}

static void test_presign_copy_rejects_bad_endpoint(void)
{
    struct aws_credentials credentials = example_credentials();
    struct rds_copy_snapshot request;
    stow_buf url;
    stow_error err;

    memset(&request, 0, sizeof request);
    request.source_arn = "arn";
    request.source_region = "us-east-1";
    request.source_endpoint = "ftp://rds.example";
    request.target_id = "t";
    stow_error_clear(&err);
    stow_buf_init(&url, 1 << 16);
    CHECK_INT_EQ(-1, rds_presign_copy_url(&request, "us-west-2", &credentials, &url, &err));
    CHECK_INT_EQ(STOW_EXIT_USAGE, err.exit_code);
    CHECK_CONTAINS(err.message, "invalid RDS endpoint URL \"ftp://rds.example\"");
    stow_buf_free(&url);
}

static void test_identifier_validation(void)
{
    CHECK_INT_EQ(1, rds_identifier_is_valid("stowage-db1-20261204-030000", 255));
    CHECK_INT_EQ(1, rds_identifier_is_valid("a", 63));
    CHECK_INT_EQ(0, rds_identifier_is_valid("", 255));
    CHECK_INT_EQ(0, rds_identifier_is_valid("1abc", 255));
    CHECK_INT_EQ(0, rds_identifier_is_valid("abc-", 255));
    CHECK_INT_EQ(0, rds_identifier_is_valid("a--b", 255));
    CHECK_INT_EQ(0, rds_identifier_is_valid("rds:db1", 255));
    CHECK_INT_EQ(0, rds_identifier_is_valid("abcdef", 5));
}

static void test_default_endpoint(void)
{
    char endpoint[256];
    stow_error err;

    stow_error_clear(&err);
    unsetenv("AWS_ENDPOINT_URL_RDS");
    unsetenv("AWS_ENDPOINT_URL");
    CHECK_INT_EQ(0, rds_default_endpoint("eu-west-1", endpoint, sizeof endpoint, &err));
    CHECK_STR_EQ("https://rds.eu-west-1.amazonaws.com", endpoint);

    setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:5000", 1);
    CHECK_INT_EQ(0, rds_default_endpoint("eu-west-1", endpoint, sizeof endpoint, &err));
    CHECK_STR_EQ("http://127.0.0.1:5000", endpoint);

    setenv("AWS_ENDPOINT_URL_RDS", "http://127.0.0.1:6000", 1);
    CHECK_INT_EQ(0, rds_default_endpoint("eu-west-1", endpoint, sizeof endpoint, &err));
    CHECK_STR_EQ("http://127.0.0.1:6000", endpoint);
    unsetenv("AWS_ENDPOINT_URL_RDS");
    unsetenv("AWS_ENDPOINT_URL");
}

int main(void)
{
    unit_run("parse snapshots", test_parse_snapshots);
    unit_run("parse cluster snapshots", test_parse_cluster_snapshots);
    unit_run("parse instances", test_parse_instances);
    unit_run("parse single results", test_parse_results);
    unit_run("parse rejects bad documents", test_parse_rejects_bad_documents);
    unit_run("parse rejects long identifier", test_parse_rejects_long_identifier);
    unit_run("error advice", test_error_advice);
    unit_run("form encoding", test_form_encoding);
    unit_run("sign matches botocore", test_sign_matches_botocore);
    unit_run("presign copy matches botocore", test_presign_copy_matches_botocore);
    unit_run("presign copy rejects bad endpoint", test_presign_copy_rejects_bad_endpoint);
    unit_run("identifier validation", test_identifier_validation);
    unit_run("default endpoint", test_default_endpoint);
    return unit_finish();
}
