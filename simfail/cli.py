"""``simfail`` command line: ``simfail COMMAND [ARG ...] [key=value ...]``.

The commands, their typed settings and their ``run`` functions live in the registry
(:mod:`simfail.commands`); configuration is composed with Hydra against each command's
schema (:mod:`simfail.schema`). ``simfail --help`` lists the commands, ``simfail COMMAND
--help`` a command's settings. Every error a user can cause is printed as one
``simfail: error: ...`` line (exit code 2) and nothing is written when the configuration is
bad. A full disk is reported in one line saying what is safe and how to resume.
"""

from __future__ import annotations

import errno
import os
import sys

from simfail.errors import SimfailError
from simfail.schema import checked_overrides, compose, config_keys  # noqa: F401  (re-exported for old imports)

HELP_FLAGS = ("-h", "--help", "help")


def _disk_full_message(cmd: str, args: list[str], exc: OSError) -> str:
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    resumable = cmd in ("generate", "realism")
    again = f"simfail {cmd} {' '.join(a for a in args if not a.startswith('resume='))} resume=true".replace("  ", " ")
    if resumable:
        return (f"out of disk space{where}: the groups committed before this point are intact (simfail check passes "
                f"on them) and the unfinished group was discarded; free space, then rerun with resume=true: {again}")
    return f"out of disk space{where}: nothing partial was kept; free space and rerun"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from simfail import commands as C

    cmd, rest = (argv[0], argv[1:]) if argv else ("--help", [])
    try:
        if cmd in HELP_FLAGS:
            print(C.command_help(rest[0], rest[1:]) if rest and rest[0] in C.COMMANDS else C.overview())
            return 0
        C.get_command(cmd)
        if any(a in HELP_FLAGS[:2] for a in rest):
            print(C.command_help(cmd, rest))
            return 0
        return C.invoke(cmd, rest)
    except SimfailError as exc:
        if "No space left on device" in str(exc):  # e.g. ffmpeg ran out of space while encoding
            exc = OSError(errno.ENOSPC, "No space left on device")
            print(f"simfail: error: {_disk_full_message(cmd, rest, exc)}", file=sys.stderr)
            return 2
        print(f"simfail: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head`: not an error (Python docs, "Note on SIGPIPE")
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            print(f"simfail: error: {_disk_full_message(cmd, rest, exc)}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        print(_interrupted_message(cmd, rest), file=sys.stderr)
        return 130


def _interrupted_message(cmd: str, args: list[str]) -> str:
    """What Ctrl-C prints: the ``resume=true`` hint only for a command (or variant: ``simfail
    benchmark build``) whose settings have ``resume`` and that keeps what it wrote (a schema
    can say otherwise with ``resumable = False``: ``simfail bench`` works in temporary
    folders and has nothing to resume)."""
    import dataclasses

    from simfail import commands as C

    try:
        command = C.get_command(cmd)
        variants = C.variants_of(command)
        if variants:
            command = variants.get(args[0] if args else "")
        schema = command.schema if command is not None and command.config is not None else None
    except (SimfailError, ImportError, AttributeError, ValueError):
        schema = None
    has_resume = dataclasses.is_dataclass(schema) and any(f.name == "resume" for f in dataclasses.fields(schema))
    if has_resume and getattr(schema, "resumable", True):
        return "simfail: interrupted; rerun with resume=true to continue"
    return "simfail: interrupted"


if __name__ == "__main__":
    sys.exit(main())
