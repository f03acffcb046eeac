#!/usr/bin/env python3
"""Write the man page material from stowage's own --help texts.

    scripts/manpages.py --stowage build/stowage --include build/stowage.h2m \
                        --pages-dir build/man1

--include writes a help2man include file: the NAME line, and a COMMANDS
section with the --help text of every command and subcommand, for
`help2man --include FILE build/stowage`, which makes stowage.1 from
`stowage --help` and `stowage --version`. --pages-dir writes one page per
command, stowage-COMMAND.1 (stowage-snapshot-create.1 for a subcommand),
from the same texts. The help texts stay the only source of the options.

Commands are read from the "Commands:" list of `stowage --help`, and
subcommands from the same list in a command's help. Help pages that a help
text points to as "(stowage ... --help)" are included too.
"""

import argparse
import datetime
import os
import re
import subprocess
import sys

COMMAND_LINE = re.compile(r"^  ([a-z][a-z0-9-]*)\s+(\S.*)$")
HELP_REFERENCE = re.compile(r"\(stowage ((?:[a-z-]+ )+)--help\)")
SUMMARY = "encrypted, verified logical backups of PostgreSQL into S3 or a local directory"


def run_help(stowage, words):
    """Return the --help text of `stowage WORDS`, or raise naming the command."""
    result = subprocess.run([stowage] + words + ["--help"], capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError("stowage %s --help exited %d: %s"
                           % (" ".join(words), result.returncode, result.stderr.strip()))
    return result.stdout


def listed_commands(help_text):
    """Return [(name, summary)] under the "Commands:" heading of a help text."""
    names = []
    in_list = False
    for line in help_text.splitlines():
        if line.strip() == "Commands:":
            in_list = True
            continue
        if in_list:
            match = COMMAND_LINE.match(line)
            if not match:
                break
            names.append((match.group(1), match.group(2)))
    return names


def collect_help_pages(stowage):
    """Return [(words, summary, help text)] for every command, subcommand and
    referenced page; a referenced page's summary is its command line."""
    pages = []
    seen = set()
    pending = [([name], summary) for name, summary in listed_commands(run_help(stowage, []))]
    while pending:
        words, summary = pending.pop(0)
        if tuple(words) in seen:
            continue
        seen.add(tuple(words))
        text = run_help(stowage, words)
        pages.append((words, summary, text))
        pending.extend((words + [name], summary) for name, summary in listed_commands(text))
        for reference in HELP_REFERENCE.findall(text):
            pending.append((reference.split(), "stowage " + reference.strip()))
    return pages


def roff_verbatim(text):
    """Return text as a no-fill roff block, escaped for roff."""
    lines = [".nf"]
    for line in text.rstrip("\n").splitlines():
        line = line.replace("\\", "\\e").replace("-", "\\-")
        if line.startswith((".", "'")):
            line = "\\&" + line
        lines.append(line)
    lines.append(".fi")
    return "\n".join(lines)


def write_include(path, pages):
    """Write the help2man include file for the main page."""
    parts = ["[NAME]", "stowage \\- " + SUMMARY, "", "[COMMANDS]"]
    for words, _, text in pages:
        parts.append('.SS "stowage %s"' % " ".join(words))
        parts.append(roff_verbatim(text))
    parts += ["", "[SEE ALSO]",
              ".BR pg_dump (1),",
              ".BR pg_restore (1),",
              ".BR help2man (1)"]
    with open(path, "w") as handle:
        handle.write("\n".join(parts) + "\n")


def write_command_page(directory, words, summary, text, version, date):
    """Write stowage-WORDS.1 for one command."""
    name = "stowage-" + "-".join(word.lstrip("-") for word in words)
    body = [
        '.TH "%s" 1 "%s" "stowage %s" "User Commands"' % (name.upper(), date, version),
        ".SH NAME",
        "%s \\- %s" % (name.replace("-", "\\-"), summary.replace("-", "\\-")),
        ".SH DESCRIPTION",
        roff_verbatim(text),
        ".SH SEE ALSO",
        ".BR stowage (1)",
    ]
    with open(os.path.join(directory, name + ".1"), "w") as handle:
        handle.write("\n".join(body) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stowage", required=True, help="path of the stowage binary")
    parser.add_argument("--include", help="help2man include file to write")
    parser.add_argument("--pages-dir", help="directory for the per-command pages")
    options = parser.parse_args(argv)

    pages = collect_help_pages(options.stowage)
    if options.include:
        write_include(options.include, pages)
    if options.pages_dir:
        version = subprocess.run([options.stowage, "--version"], capture_output=True,
                                 text=True, check=True).stdout.split()[-1]
        # SOURCE_DATE_EPOCH keeps the date reproducible, as help2man does.
        epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0")) or None
        date = (datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc) if epoch
                else datetime.datetime.now(datetime.timezone.utc)).strftime("%B %Y")
        os.makedirs(options.pages_dir, exist_ok=True)
        for words, summary, text in pages:
            write_command_page(options.pages_dir, words, summary, text, version, date)
    return 0


if __name__ == "__main__":
    sys.exit(main())
