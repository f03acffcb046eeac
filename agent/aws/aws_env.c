/* Region and endpoint resolution shared by the S3, RDS and STS clients. */
#include "aws/aws_env.h"

#include <stdio.h>
#include <stdlib.h>

const char *aws_env_value(const char *name)
{
    const char *value = getenv(name);

    return value != NULL && value[0] != '\0' ? value : NULL;
}

const char *aws_default_region(void)
{
    const char *region = aws_env_value("AWS_REGION");

    if (region == NULL)
        region = aws_env_value("AWS_DEFAULT_REGION");
    return region != NULL ? region : "us-east-1";
}

int aws_service_endpoint(const char *service_variable, const char *host_prefix,
                         const char *region, const char *label, char *out, size_t size,
                         stow_error *err)
{
    const char *endpoint = aws_env_value(service_variable);
    int written;

    if (endpoint == NULL)
        endpoint = aws_env_value("AWS_ENDPOINT_URL");
    if (endpoint != NULL)
        written = snprintf(out, size, "%s", endpoint);
    else
        written = snprintf(out, size, "https://%s.%s.amazonaws.com", host_prefix, region);
    if (written < 0 || (size_t)written >= size)
        return stow_fail(err, STOW_EXIT_USAGE, "%s endpoint URL is too long", label);
    return 0;
}
