/* AWS settings from the environment, resolved the way the AWS SDKs do:
 * the service's own variable first (AWS_ENDPOINT_URL_S3), then the shared
 * one (AWS_ENDPOINT_URL), then the public regional endpoint. */
#ifndef STOWAGE_AWS_ENV_H
#define STOWAGE_AWS_ENV_H

#include <stddef.h>

#include "common/error.h"

/* Returns the variable's value, or NULL when it is unset or empty. */
const char *aws_env_value(const char *name);

/* AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1. */
const char *aws_default_region(void);

/* Writes the endpoint URL of a service: service_variable (for example
 * "AWS_ENDPOINT_URL_RDS"), then AWS_ENDPOINT_URL, then "https://HOST.REGION
 * .amazonaws.com" with host_prefix ("rds"). label names the service in the
 * error for a URL longer than size. */
int aws_service_endpoint(const char *service_variable, const char *host_prefix,
                         const char *region, const char *label, char *out, size_t size,
                         stow_error *err);

#endif
