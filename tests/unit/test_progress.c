/* Progress line text: sizes, rate, ETA and the parts of a backup. */
#include "unit.h"

#include "common/progress.h"

static void test_known_total_eta(void)
{
    char line[160];

    /* 10 MiB of 40 MiB in 5 s: 2 MiB/s, 15 s left. */
    stow_progress_format("restore", "read", 10u << 20, 40u << 20, 0, 5.0, line, sizeof line);
    CHECK_STR_EQ("restore: 10.0 MiB of 40.0 MiB read (25%), 2.0 MiB/s, ETA 0:15", line);
}

static void test_eta_in_hours(void)
{
    char line[160];

    /* 1 GiB of 101 GiB at 1 MiB/s: 102400 s left. */
    stow_progress_format("verify", "read", 1ull << 30, 101ull << 30, 0, 1024.0, line,
                         sizeof line);
    CHECK_STR_EQ("verify: 1.0 GiB of 101.0 GiB read (1%), 1.0 MiB/s, ETA 28:26:40", line);
}

static void test_no_rate_yet(void)
{
    char line[160];

    stow_progress_format("replicate", "copied", 0, 4096, 0, 0.0, line, sizeof line);
    CHECK_STR_EQ("replicate: 0 B of 4.0 KiB copied (0%), 0 B/s, ETA --:--", line);
}

static void test_complete_transfer(void)
{
    char line[160];

    stow_progress_format("verify", "read", 4096, 4096, 0, 2.0, line, sizeof line);
    CHECK_STR_EQ("verify: 4.0 KiB of 4.0 KiB read (100%), 2.0 KiB/s, ETA 0:00", line);
}

static void test_unknown_total_parts(void)
{
    char line[160];

    stow_progress_format("backup", "dumped", 3u << 20, 0, 1, 2.0, line, sizeof line);
    CHECK_STR_EQ("backup: 3.0 MiB dumped, 1.5 MiB/s, 1 part uploaded", line);
    stow_progress_format("backup", "dumped", 512, 0, 7, 1.0, line, sizeof line);
    CHECK_STR_EQ("backup: 512 B dumped, 512 B/s, 7 parts uploaded", line);
}

int main(void)
{
    unit_run("known total with ETA", test_known_total_eta);
    unit_run("ETA in hours", test_eta_in_hours);
    unit_run("no rate yet", test_no_rate_yet);
    unit_run("complete transfer", test_complete_transfer);
    unit_run("unknown total with parts", test_unknown_total_parts);
    return unit_finish();
}
