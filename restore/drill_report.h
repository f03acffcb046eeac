/* Output of DR drills: the JSON and Markdown report files and the summary
 * printed on stdout, all made from the drill's JSON report document. */
#ifndef STOWAGE_DRILL_REPORT_H
#define STOWAGE_DRILL_REPORT_H

#include <jansson.h>

#include "common/error.h"

/* Writes the report as JSON to json_path and as Markdown to markdown_path;
 * either may be NULL. Each file is replaced atomically. */
int drill_write_reports(const json_t *report, const char *json_path, const char *markdown_path,
                        stow_error *err);

void drill_print_summary(const json_t *report);

#endif
