/* AWS XML responses: conversion of error bodies into Stowage errors, and
 * small libxml2 helpers shared by the S3 and RDS clients.
 *
 * AWS services return errors in three XML shapes, and all are parsed here:
 *   S3:             <Error><Code/><Message/><RequestId/></Error>
 *   Query APIs:     <ErrorResponse><Error><Code/>...</Error><RequestId/></ErrorResponse>
 *   Auth failures:  <ErrorResponse><Errors><Error>...</Error></Errors></ErrorResponse>
 * (also <Response><Errors><Error> as EC2-style services send). Element
 * names are matched by local name, so namespaces do not matter.
 *
 * Documents are parsed with XML_PARSE_NONET and without entity
 * substitution, so a response cannot make the parser read files or the
 * network. Callers bound the body size before parsing. */
#ifndef STOWAGE_AWS_XML_H
#define STOWAGE_AWS_XML_H

#include <libxml/tree.h>
#include <stddef.h>
#include <time.h>

#include "common/error.h"

#define AWS_ERROR_CODE_MAX 128
#define AWS_ERROR_MESSAGE_MAX 512
#define AWS_REQUEST_ID_MAX 128

/* The fields of an AWS error body; empty strings where absent. */
struct aws_error_body {
    char code[AWS_ERROR_CODE_MAX];
    char message[AWS_ERROR_MESSAGE_MAX];
    char request_id[AWS_REQUEST_ID_MAX];
    char region[64];      /* S3: <Region>, else the x-amz-bucket-region header; "" when absent */
    char endpoint[256];   /* S3 PermanentRedirect: <Endpoint>; "" when absent */
};

/* A failed AWS call, as the error message reports it. */
struct aws_failure {
    const char *service;   /* "S3", "RDS" */
    const char *operation; /* "UploadPart", "CreateDBSnapshot" */
    const char *subject;   /* "bucket B key K part 3 upload id U"; may be NULL */
    long status;           /* HTTP status */
    const struct aws_error_body *error; /* parsed body; NULL or empty code when none */
    int attempts;          /* attempts made; > 1 adds "after N attempts" */
};

/* Parses body as one of the AWS error shapes. Returns 0 when an error
 * element with a Code was found, -1 otherwise (out is emptied either way). */
int aws_xml_parse_error(const void *body, size_t len, struct aws_error_body *out);

/* Records failure in err. The message names the operation, subject, HTTP
 * status and the service's code and message, and the hint names the next
 * step for well-known codes. Exit code STOW_EXIT_STORAGE for access, credential,
 * bucket and region problems, STOW_EXIT_FAILURE otherwise. Returns -1. */
int aws_xml_fail_response(stow_error *err, const struct aws_failure *failure);

/* Returns 1 when retrying can fix an error with this HTTP status (429, 500,
 * 502, 503, 504) or this code (throttling, RequestTimeout, ExpiredToken,
 * InternalError, ...). code may be NULL or "". */
int aws_error_is_retryable(long status, const char *code);

/* Returns 1 for codes that mean the temporary credentials expired. */
int aws_error_is_expired_token(const char *code);

/* --- helpers for response parsers ---------------------------------------- */

/* Parses an XML document from memory; NULL when it is not well-formed.
 * Free with xmlFreeDoc. */
xmlDoc *aws_xml_read(const void *body, size_t len);

/* Returns 1 when node is an element with this local name. */
int aws_xml_is(const xmlNode *node, const char *name);

/* Returns the first child element with this local name, or NULL. */
xmlNode *aws_xml_child(const xmlNode *parent, const char *name);

/* Copies the text of child element name into out. Returns 0, or -1 when the
 * child is missing or its text does not fit (out is then ""). */
int aws_xml_child_text(const xmlNode *parent, const char *name, char *out, size_t size);

/* Returns a malloc'd copy of the text of child element name, or NULL when
 * the child is missing or memory ran out. */
char *aws_xml_child_strdup(const xmlNode *parent, const char *name);

/* Parses an ISO 8601 UTC time ("2009-10-12T17:50:30.000Z"). Returns 0, or
 * -1 when text is not in that form. */
int aws_xml_parse_time(const char *text, time_t *out);

#endif
