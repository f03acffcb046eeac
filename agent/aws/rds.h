/* Amazon RDS client: the Query API (version 2014-10-31) calls that the
 * snapshot commands and scratch-instance restores need, signed with SigV4
 * and sent with the retrying HTTP layer (aws/http.h).
 *
 * Requests. Every call is one form-encoded POST ("Action=...&Version=...")
 * to the endpoint's path "/", signed for service "rds" with the headers
 * content-type, host and x-amz-date, as botocore signs them. Responses are
 * XML documents of at most RDS_XML_BODY_MAX bytes, parsed with libxml2.
 *
 * Errors. Throttling, 5xx and the other retryable failures of http.h are
 * retried with backoff and jitter. A final failure fills err with the
 * action, subject, HTTP status and the service's code and message, then
 * rds_error_advise sets the exit code and hint for the RDS codes (not
 * found: STOW_EXIT_USAGE; quotas and states: STOW_EXIT_FAILURE). The code
 * of the last failed call stays readable with rds_client_error_code, so a
 * caller can treat DBInstanceNotFound during a cleanup as done.
 *
 * Deleting instances. The only deletion of an instance is
 * rds_delete_scratch_instance, which reads the instance's tags first and
 * rejects an instance without RDS_TAG_SCRATCH=true.
 *
 * Threads. A client is used by one thread at a time. */
#ifndef STOWAGE_AWS_RDS_H
#define STOWAGE_AWS_RDS_H

#include <stddef.h>
#include <time.h>

#include "aws/credentials.h"
#include "aws/http.h"
#include "aws/sigv4.h"
#include "common/buf.h"
#include "common/error.h"

#define RDS_API_VERSION "2014-10-31"
#define RDS_XML_BODY_MAX (16u * 1024 * 1024)
#define RDS_FORM_CONTENT_TYPE "application/x-www-form-urlencoded; charset=utf-8"
/* Validity of the pre-signed URL of a cross-region copy, as botocore sets it. */
#define RDS_PRESIGN_EXPIRES 3600

/* Field sizes, terminating NUL included. Identifiers have at most 255
 * characters in RDS; a longer value in a response fails the parse rather
 * than being cut, so that a cut identifier can never name another resource. */
#define RDS_ID_MAX 256
#define RDS_ARN_MAX 1024
#define RDS_KMS_KEY_MAX 2048
#define RDS_FIELD_MAX 128
#define RDS_HOST_MAX 256

/* Tags that Stowage writes and reads. */
#define RDS_TAG_CREATED_BY "stowage:created-by"
#define RDS_TAG_CREATED_BY_VALUE "stowage"
#define RDS_TAG_SOURCE "stowage:source"
#define RDS_TAG_COPIED_FROM "stowage:copied-from"
#define RDS_TAG_SCRATCH "stowage:scratch"
#define RDS_TAG_EXPIRES_AT "stowage:expires-at"

/* Returned by calls that document it: the snapshot or instance does not exist. */
#define RDS_NOT_FOUND 1

typedef struct rds_client rds_client;

struct rds_options {
    const char *region;   /* NULL: AWS_REGION, else AWS_DEFAULT_REGION, else us-east-1 */
    const char *endpoint; /* NULL: rds_default_endpoint() */
    int max_attempts;     /* attempts per call; 0: HTTP_DEFAULT_MAX_ATTEMPTS */
    struct aws_credentials_provider *credentials; /* borrowed; NULL: default chain */
};

struct rds_tag {
    char *key;   /* owned */
    char *value; /* owned */
};

struct rds_tag_list {
    struct rds_tag *tags; /* owned */
    size_t count;
    int present;          /* 1 when the response had a TagList element */
};

/* A DB snapshot or, with cluster set, a DB cluster snapshot. */
struct rds_snapshot {
    int cluster;
    char id[RDS_ID_MAX];              /* DBSnapshotIdentifier, DBClusterSnapshotIdentifier */
    char source_id[RDS_ID_MAX];       /* DBInstanceIdentifier, DBClusterIdentifier */
    char arn[RDS_ARN_MAX];
    char status[RDS_FIELD_MAX];       /* creating, available, copying, ... */
    char snapshot_type[RDS_FIELD_MAX]; /* manual, automated, shared, public */
    char engine[RDS_FIELD_MAX];
    char engine_version[RDS_FIELD_MAX];
    char kms_key_id[RDS_KMS_KEY_MAX]; /* "" when unencrypted */
    char source_region[RDS_FIELD_MAX]; /* region of the original of a copy, else "" */
    int encrypted;
    long allocated_storage_gib;
    int percent_progress;             /* -1 when not reported */
    time_t created;                   /* SnapshotCreateTime; 0 while not reported */
    /* OriginalSnapshotCreateTime: when the first snapshot of a chain of
     * copies was taken (a copy's SnapshotCreateTime is when it was copied).
     * 0 when the response lacks it. */
    time_t original_created;
    struct rds_tag_list tags;
};

struct rds_snapshot_list {
    struct rds_snapshot *items; /* owned */
    size_t count;
};

struct rds_instance {
    char id[RDS_ID_MAX];
    char arn[RDS_ARN_MAX];
    char status[RDS_FIELD_MAX];       /* creating, available, deleting, ... */
    char engine[RDS_FIELD_MAX];
    char engine_version[RDS_FIELD_MAX];
    char instance_class[RDS_FIELD_MAX];
    char master_username[RDS_FIELD_MAX];
    char endpoint_address[RDS_HOST_MAX]; /* "" until the instance has one */
    int endpoint_port;
    int publicly_accessible;
    int encrypted;
    long allocated_storage_gib;
    time_t created;
    time_t latest_restorable;         /* LatestRestorableTime; 0 when absent */
    struct rds_tag_list tags;
};

struct rds_instance_list {
    struct rds_instance *items; /* owned */
    size_t count;
};

/* Returns AWS_REGION, else AWS_DEFAULT_REGION, else "us-east-1". */
const char *rds_default_region(void);

/* Writes AWS_ENDPOINT_URL_RDS, else AWS_ENDPOINT_URL, else
 * https://rds.REGION.amazonaws.com into out.
 * NOTE: regions outside the aws partition (China: amazonaws.com.cn) need an
 * explicit endpoint. */
int rds_default_endpoint(const char *region, char *out, size_t size, stow_error *err);

/* Creates a client. Fails with STOW_EXIT_USAGE for a malformed endpoint.
 * Contacts nothing. */
int rds_client_new(const struct rds_options *options, rds_client **out, stow_error *err);

/* Accepts NULL. */
void rds_client_free(rds_client *client);

const char *rds_client_region(const rds_client *client);
const char *rds_client_endpoint(const rds_client *client);

/* Sets the HTTP timeouts and backoff (tests shorten them). */
void rds_client_set_http_settings(rds_client *client, const struct http_settings *settings);

/* Returns the AWS error code of the last failed call ("DBSnapshotNotFound"),
 * or "" when it failed without one or no call failed. */
const char *rds_client_error_code(const rds_client *client);

/* Returns how many attempts the last failed call made. More than one means
 * an earlier attempt may have taken effect with its response lost. */
int rds_client_error_attempts(const rds_client *client);

/* --- snapshots ------------------------------------------------------------ */

struct rds_create_snapshot {
    int cluster;               /* CreateDBClusterSnapshot instead of CreateDBSnapshot */
    const char *snapshot_id;
    const char *source_id;     /* instance or cluster identifier */
    const struct rds_tag *tags;
    size_t tag_count;
};

int rds_create_snapshot(rds_client *client, const struct rds_create_snapshot *request,
                        struct rds_snapshot *out, stow_error *err);

/* Describes one snapshot. Returns RDS_NOT_FOUND (err untouched) when it
 * does not exist. */
int rds_describe_snapshot(rds_client *client, int cluster, const char *snapshot_id,
                          struct rds_snapshot *out, stow_error *err);

/* Lists snapshots, page by page (Marker), into out (emptied first).
 * source_id (may be NULL) narrows the list to one instance or cluster; a
 * source that does not exist gives an empty list. */
int rds_describe_snapshots(rds_client *client, int cluster, const char *source_id,
                           struct rds_snapshot_list *out, stow_error *err);

struct rds_copy_snapshot {
    const char *source_arn;      /* the source snapshot's ARN (required across regions) */
    const char *source_region;   /* region of the source snapshot */
    const char *source_endpoint; /* endpoint URL of source_region, for the pre-signed URL */
    const char *target_id;
    const char *kms_key_id;      /* NULL: none (an unencrypted snapshot) */
    const struct rds_tag *tags;
    size_t tag_count;
    time_t time;                 /* signing time of the pre-signed URL; 0: now */
};

/* Calls CopyDBSnapshot in the client's region (the destination). When the
 * source region differs, the request carries PreSignedUrl: a CopyDBSnapshot
 * of the same parameters plus DestinationRegion, presigned for the source
 * region, as botocore builds it from SourceRegion. */
int rds_copy_snapshot(rds_client *client, const struct rds_copy_snapshot *request,
                      struct rds_snapshot *out, stow_error *err);

/* Deletes a DB snapshot. Returns RDS_NOT_FOUND (err untouched) when it does
 * not exist. */
int rds_delete_snapshot(rds_client *client, const char *snapshot_id, stow_error *err);

/* --- tags -------------------------------------------------------------------- */

int rds_add_tags(rds_client *client, const char *arn, const struct rds_tag *tags, size_t count,
                 stow_error *err);

/* Reads the tags of the resource named by arn into out (emptied first). */
int rds_list_tags(rds_client *client, const char *arn, struct rds_tag_list *out,
                  stow_error *err);

/* Returns the value of tag key, or NULL. */
const char *rds_tag_value(const struct rds_tag_list *tags, const char *key);

/* --- instances --------------------------------------------------------------- */

/* Describes one instance. Returns RDS_NOT_FOUND (err untouched) when it does
 * not exist. */
int rds_describe_instance(rds_client *client, const char *instance_id,
                          struct rds_instance *out, stow_error *err);

/* Lists every instance of the region, page by page (Marker). */
int rds_describe_instances(rds_client *client, struct rds_instance_list *out, stow_error *err);

/* Settings of a new instance restored from a snapshot or to a point in
 * time. PubliclyAccessible is always sent as false. */
struct rds_restore_instance {
    const char *instance_id;           /* the new instance */
    const char *snapshot_id;           /* RestoreDBInstanceFromDBSnapshot */
    const char *source_instance_id;    /* RestoreDBInstanceToPointInTime */
    time_t restore_time;               /* point in time; 0: UseLatestRestorableTime */
    const char *instance_class;        /* NULL: as the source */
    const char *subnet_group;          /* NULL: as the source (or the default VPC) */
    const char *parameter_group;       /* NULL: the default group */
    const char *const *security_groups; /* VPC security group ids */
    size_t security_group_count;
    const struct rds_tag *tags;
    size_t tag_count;
    int enable_iam_auth;               /* 1: EnableIAMDatabaseAuthentication=true */
};

int rds_restore_from_snapshot(rds_client *client, const struct rds_restore_instance *request,
                              struct rds_instance *out, stow_error *err);

int rds_restore_to_point_in_time(rds_client *client,
                                 const struct rds_restore_instance *request,
                                 struct rds_instance *out, stow_error *err);

/* Deletes an instance without a final snapshot, after checking that its
 * tags (the describe call's TagList, else ListTagsForResource) contain
 * RDS_TAG_SCRATCH=true. Rejects any other instance with STOW_EXIT_USAGE.
 * Returns RDS_NOT_FOUND (err untouched) when the instance does not exist. */
int rds_delete_scratch_instance(rds_client *client, const char *instance_id, stow_error *err);

/* Frees what the structures own; each accepts NULL and leaves the
 * structure empty. */
void rds_tag_list_free(struct rds_tag_list *tags);
void rds_snapshot_free(struct rds_snapshot *snapshot);
void rds_snapshot_list_free(struct rds_snapshot_list *list);
void rds_instance_free(struct rds_instance *instance);
void rds_instance_list_free(struct rds_instance_list *list);

/* Returns 1 when text is a valid RDS identifier: 1 to 255 letters, digits
 * and hyphens, starting with a letter, without two hyphens in a row or a
 * hyphen at the end. Instance identifiers are further limited to 63. */
int rds_identifier_is_valid(const char *text, size_t max_len);

/* --- errors ------------------------------------------------------------------ */

/* Sets the exit code and hint of an RDS failure in err from its AWS error
 * code (the message stays). Codes without RDS-specific advice keep what
 * aws_xml_fail_response chose. */
void rds_error_advise(stow_error *err, const char *code);

/* --- request forms and parsers (exposed for tests and tools) ------------------ */

/* A list of request parameters; names and values are owned copies. */
struct rds_params {
    struct sigv4_param *items;
    size_t count;
    size_t cap;
};

void rds_params_init(struct rds_params *params);
int rds_params_add(struct rds_params *params, const char *name, const char *value,
                   stow_error *err);
/* Adds Tags.Tag.N.Key and Tags.Tag.N.Value for each tag. */
int rds_params_add_tags(struct rds_params *params, const struct rds_tag *tags, size_t count,
                        stow_error *err);
void rds_params_free(struct rds_params *params);

/* Appends the form encoding (name=value joined by '&', each percent-encoded
 * by the SigV4 rules) of params to out. */
int rds_form_encode(const struct sigv4_param *params, size_t count, stow_buf *out,
                    stow_error *err);

/* One form request to sign. */
struct rds_signing {
    const char *region;
    const char *host;    /* Host header: "rds.us-east-1.amazonaws.com" or "127.0.0.1:5000" */
    const char *path;    /* "/" unless the endpoint has a path */
    const void *body;
    size_t body_len;
    time_t time;
    const struct aws_credentials *credentials;
};

/* Signs a form POST (content-type, host, x-amz-date; payload hash of the body). */
int rds_sign_form(const struct rds_signing *signing, struct sigv4_signature *out,
                  stow_error *err);

/* Writes the pre-signed CopyDBSnapshot URL of request for a copy into
 * destination_region into url (reset first): source_endpoint + "/?" +
 * the presigned query of the copy's parameters plus DestinationRegion.
 * Anyone holding the URL can make the call, so callers never log it. */
int rds_presign_copy_url(const struct rds_copy_snapshot *request,
                         const char *destination_region,
                         const struct aws_credentials *credentials, stow_buf *url,
                         stow_error *err);

/* Parse a DescribeDBSnapshots or DescribeDBClusterSnapshots response into out
 * (emptied first); *marker (malloc'd) is the next page's Marker, or NULL. */
int rds_parse_snapshots(const void *body, size_t len, int cluster,
                        struct rds_snapshot_list *out, char **marker, stow_error *err);

/* Parses a DescribeDBInstances response; *marker as above. */
int rds_parse_instances(const void *body, size_t len, struct rds_instance_list *out,
                        char **marker, stow_error *err);

/* Parses the response of action (CreateDBSnapshot, CopyDBSnapshot, ...)
 * whose result holds one snapshot (element DBSnapshot or DBClusterSnapshot). */
int rds_parse_snapshot_result(const void *body, size_t len, const char *action, int cluster,
                              struct rds_snapshot *out, stow_error *err);

/* Parses the response of action whose result holds one DBInstance. */
int rds_parse_instance_result(const void *body, size_t len, const char *action,
                              struct rds_instance *out, stow_error *err);

/* Parses a ListTagsForResource response. */
int rds_parse_tags(const void *body, size_t len, struct rds_tag_list *out, stow_error *err);

#endif
