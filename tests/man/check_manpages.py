#!/usr/bin/env python3
"""Check the man pages that the build made from stowage's --help texts.

    tests/man/check_manpages.py --stowage build/stowage --page build/stowage.1 \
                                --pages-dir build/man1

Each page must render with `groff -man -Tutf8 -ww` and `man -l` without a
warning, and stowage.1 must contain every option that any command's --help
text names, as must each command's own page. Prints "N passed, N failed".
"""

import argparse
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts"))

import manpages  # noqa: E402

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
# groff may print U+2010 (hyphen) or U+2212 (minus) for "-" and "\-".
DASHES = str.maketrans({"\u2010": "-", "\u2212": "-"})


def render(page):
    """Return (text, warnings) of page rendered by groff for a UTF-8 terminal."""
    result = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou", page],
                            capture_output=True, text=True, timeout=60)
    warnings = result.stderr.strip()
    if result.returncode != 0:
        warnings += "\ngroff exited %d" % result.returncode
    return result.stdout.translate(DASHES), warnings


def render_with_man(page):
    """Return the warnings of `man -l page`, or "" when it rendered cleanly."""
    env = dict(os.environ, MANWIDTH="80", MANPAGER="cat", PAGER="cat", LC_ALL="C.UTF-8")
    result = subprocess.run(["man", "-l", page], capture_output=True, text=True, timeout=60,
                            env=env)
    warnings = result.stderr.strip()
    if result.returncode != 0 or not result.stdout.strip():
        warnings += "\nman -l exited %d with %d bytes of output" % (result.returncode,
                                                                    len(result.stdout))
    return warnings


def page_file(pages_dir, words):
    return os.path.join(pages_dir, "stowage-%s.1" % "-".join(w.lstrip("-") for w in words))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stowage", required=True)
    parser.add_argument("--page", required=True)
    parser.add_argument("--pages-dir", required=True)
    options = parser.parse_args(argv)

    failures = []
    checks = 0

    def check(condition, message):
        nonlocal checks
        checks += 1
        if not condition:
            failures.append(message)
            print("FAIL " + message)

    if not os.path.exists(options.page):
        print("FAIL %s is missing: build the man target (cmake --build BUILD --target man)"
              % options.page)
        print("0 passed, 1 failed")
        return 1

    help_pages = manpages.collect_help_pages(options.stowage)
    main_text, warnings = render(options.page)
    check(warnings == "", "groff warns about %s: %s" % (options.page, warnings))
    warnings = render_with_man(options.page)
    check(warnings == "", "man -l warns about %s: %s" % (options.page, warnings))

    for words, _, help_text in help_pages:
        command = "stowage " + " ".join(words)
        expected = sorted(set(OPTION.findall(help_text)))
        missing = [option for option in expected if option not in main_text]
        check(not missing, "%s misses options of %s: %s" % (options.page, command,
                                                             ", ".join(missing)))

        path = page_file(options.pages_dir, words)
        check(os.path.exists(path), "%s is missing" % path)
        if not os.path.exists(path):
            continue
        text, warnings = render(path)
        check(warnings == "", "groff warns about %s: %s" % (path, warnings))
        missing = [option for option in expected if option not in text]
        check(not missing, "%s misses options: %s" % (path, ", ".join(missing)))

    print("checked %s and %d command pages" % (options.page, len(help_pages)))
    print("%d passed, %d failed" % (checks - len(failures), len(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
