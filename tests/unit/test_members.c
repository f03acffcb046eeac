/* Tests for formats/members.c: crafted tar archives whose members would
 * land outside the extract directory are rejected before any data is
 * delivered. The archives are built here with libarchive's writer, so each
 * case shows the exact header it feeds the reader. */
#include "unit.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdlib.h>

#include "members.h"

#define ARCHIVE_MAX (64 * 1024)

struct crafted {
    unsigned char bytes[ARCHIVE_MAX];
    size_t len;
    int delivered;  /* 1 once the reader passed source bytes on */
    int members;    /* member data calls seen by on_data */
};

/* One member of a crafted archive: a file, a symlink or a hard link. */
struct crafted_member {
    const char *name;
    unsigned type;         /* AE_IFREG or AE_IFLNK */
    const char *link;      /* symlink target, or hard link target with AE_IFREG */
};

static void craft(struct crafted *out, const struct crafted_member *members, size_t count)
{
    struct archive *writer = archive_write_new();
    size_t used = 0;

    archive_write_set_format_pax_restricted(writer);
    archive_write_set_bytes_in_last_block(writer, 1);
    archive_write_open_memory(writer, out->bytes, sizeof out->bytes, &used);
    for (size_t i = 0; i < count; i++) {
        struct archive_entry *entry = archive_entry_new();
        static const char data[] = "payload\n";
        int is_hardlink = members[i].type == AE_IFREG && members[i].link != NULL;

        archive_entry_set_pathname(entry, members[i].name);
        archive_entry_set_filetype(entry, members[i].type);
        archive_entry_set_perm(entry, 0600);
        if (members[i].type == AE_IFLNK)
            archive_entry_set_symlink(entry, members[i].link);
        if (is_hardlink)
            archive_entry_set_hardlink(entry, members[i].link);
        archive_entry_set_size(entry, members[i].type == AE_IFREG && !is_hardlink
                                          ? (la_int64_t)(sizeof data - 1) : 0);
        archive_write_header(writer, entry);
        if (members[i].type == AE_IFREG && !is_hardlink)
            archive_write_data(writer, data, sizeof data - 1);
        archive_entry_free(entry);
    }
    archive_write_close(writer);
    archive_write_free(writer);
    out->len = used;
    out->delivered = 0;
    out->members = 0;
}

static int crafted_source(void *context, const void **data, size_t *len, stow_error *err)
{
    struct crafted *archive = context;

    (void)err;
    *data = archive->bytes;
    *len = archive->delivered ? 0 : archive->len;
    archive->delivered = 1;
    return 0;
}

static int count_member(void *context, const char *name, uint64_t offset, const void *data,
                        size_t len, stow_error *err)
{
    struct crafted *archive = context;

    (void)name, (void)data, (void)len, (void)err;
    archive->members += offset == 0 ? 1 : 0;
    return 0;
}

/* Reads a crafted archive whose second member is bad; the first (safe)
 * member is delivered, the bad one is rejected with expected_fragment. */
static void check_rejected(const struct crafted_member *bad, const char *expected_fragment)
{
    static struct crafted archive;
    struct crafted_member members[2] = {{"backup-info.json", AE_IFREG, NULL}, *bad};
    stow_error err = {0};

    craft(&archive, members, 2);
    CHECK(archive.len > 0);
    CHECK_INT_EQ(-1, members_read(crafted_source, &archive, count_member, &archive, &err));
    CHECK_INT_EQ(STOW_EXIT_VERIFY, err.exit_code);
    CHECK_CONTAINS(err.message, "unsafe member");
    CHECK_CONTAINS(err.message, expected_fragment);
    CHECK_INT_EQ(1, archive.members);
}

static void test_safe_archive_is_read(void)
{
    static struct crafted archive;
    const struct crafted_member members[] = {{"backup-info.json", AE_IFREG, NULL},
                                             {"database.dump.00000000", AE_IFREG, NULL}};
    stow_error err = {0};

    craft(&archive, members, 2);
    CHECK_INT_EQ(0, members_read(crafted_source, &archive, count_member, &archive, &err));
    CHECK_INT_EQ(2, archive.members);
}

static void test_parent_reference_rejected(void)
{
    const struct crafted_member parent = {"../outside", AE_IFREG, NULL};
    const struct crafted_member nested = {"a/../../outside", AE_IFREG, NULL};

    check_rejected(&parent, "\"../outside\"");
    check_rejected(&nested, "\"a/../../outside\"");
}

static void test_absolute_path_rejected(void)
{
    const struct crafted_member absolute = {"/tmp/stowage-outside", AE_IFREG, NULL};

    check_rejected(&absolute, "\"/tmp/stowage-outside\"");
}

static void test_links_rejected(void)
{
    const struct crafted_member symlink = {"database.dump.00000001", AE_IFLNK, "/etc/passwd"};
    const struct crafted_member hardlink = {"database.dump.00000001", AE_IFREG, "/etc/passwd"};

    check_rejected(&symlink, "not a regular file");
    check_rejected(&hardlink, "not a regular file");
}

static void test_name_checks(void)
{
    CHECK_INT_EQ(1, members_name_is_safe("database.dump.00000000"));
    CHECK_INT_EQ(1, members_name_is_safe("..hidden"));
    CHECK_INT_EQ(0, members_name_is_safe(""));
    CHECK_INT_EQ(0, members_name_is_safe(".."));
    CHECK_INT_EQ(0, members_name_is_safe("a/.."));
    CHECK_INT_EQ(0, members_name_is_safe("/etc/passwd"));
}

int main(void)
{
    unit_run("safe archive is read", test_safe_archive_is_read);
    unit_run("parent references rejected", test_parent_reference_rejected);
    unit_run("absolute paths rejected", test_absolute_path_rejected);
    unit_run("symbolic and hard links rejected", test_links_rejected);
    unit_run("member name checks", test_name_checks);
    return unit_finish();
}
