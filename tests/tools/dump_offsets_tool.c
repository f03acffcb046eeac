/* Test tool for restore/dump_offsets.c, driven by
 * tests/integration/test_restore_jobs.py.
 *
 *   dump_offsets_tool FILE   writes the data offsets into the TOC of the
 *                            custom-format archive FILE in place and prints
 *                            "filled: N", or "not indexed" (exit 0) when
 *                            the archive's layout is not one it reads */
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "dump_offsets.h"

int main(int argc, char **argv)
{
    stow_error err = {0};
    struct stat info;
    size_t filled = 0;
    int fd;
    int rc;

    if (argc != 2) {
        fprintf(stderr, "usage: dump_offsets_tool FILE\n");
        return STOW_EXIT_USAGE;
    }
    fd = open(argv[1], O_RDWR);
    if (fd < 0 || fstat(fd, &info) != 0) {
        perror(argv[1]);
        return STOW_EXIT_FAILURE;
    }
    rc = dump_offsets_fill(fd, (uint64_t)info.st_size, &filled, &err);
    close(fd);
    if (rc < 0) {
        fprintf(stderr, "error: %s\n", err.message);
        return err.exit_code;
    }
    if (rc == 1)
        printf("not indexed\n");
    else
        printf("filled: %zu\n", filled);
    return STOW_EXIT_OK;
}
