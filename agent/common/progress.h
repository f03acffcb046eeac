/* A one-line progress display on stderr for long transfers: bytes done,
 * rate, and either the ETA (when the total is known: restore, verify,
 * extract, replicate) or the parts uploaded (backup, whose size is not
 * known until the dump ends).
 *
 * Pipelines add to atomic counters from any thread. A display thread
 * redraws the line at most PROGRESS_REDRAWS_PER_SECOND times a second, so
 * the data path never formats or writes. The line is drawn through the
 * logger (stow_log_status_line), which clears it before every log line.
 *
 * It is shown by default only when stderr is a terminal and logs are text.
 * --progress shows it anyway (for a pipe too) and --no-progress never.
 * JSON logs never get it: cli_parse rejects --progress with them, and the
 * display stays off with JSON logs whatever the mode. One transfer is
 * shown at a time: stow_progress_begin ends the previous one. */
#ifndef STOWAGE_PROGRESS_H
#define STOWAGE_PROGRESS_H

#include <stddef.h>
#include <stdint.h>

#define PROGRESS_REDRAWS_PER_SECOND 4

enum stow_progress_mode {
    STOW_PROGRESS_AUTO = 0, /* on a terminal with text logs */
    STOW_PROGRESS_ON = 1,
    STOW_PROGRESS_OFF = 2
};

void stow_progress_set_mode(enum stow_progress_mode mode);
enum stow_progress_mode stow_progress_get_mode(void);

/* Names the command at the start of the line ("restore"). Copied. */
void stow_progress_set_command(const char *command);

/* Starts showing a transfer of total_bytes (0: unknown). action is the
 * past participle that follows the byte count ("read", "dumped",
 * "copied"), a static string. */
void stow_progress_begin(const char *action, uint64_t total_bytes);

/* Counts bytes transferred, or one part uploaded. Cheap and thread-safe;
 * a no-op when no display is running. */
void stow_progress_add_bytes(uint64_t bytes);
void stow_progress_add_part(void);

/* Draws the final line, keeps it on screen and stops the display thread.
 * Does nothing when no display is running. */
void stow_progress_end(void);

/* Writes the progress line for done bytes (of total, 0: unknown) after
 * elapsed seconds into out. For the display and for tests. */
void stow_progress_format(const char *command, const char *action, uint64_t done,
                          uint64_t total, uint64_t parts, double elapsed, char *out,
                          size_t size);

#endif
