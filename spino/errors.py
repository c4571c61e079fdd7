"""The one error type for a user's mistakes, so that the ``spino`` command can tell them from bugs.

An ``InputError`` says which file (or setting) is wrong and what is wrong with it, in one line;
the command prints just that line. Any other exception is a bug in spino and keeps its traceback.
Both subclass the built-in errors they refine, so callers may still catch ValueError or
FileNotFoundError.
"""

from __future__ import annotations

import errno


class InputError(ValueError):
    """A bad input file, setting or argument: the message starts with the file and says the problem."""


class MissingFileError(InputError, FileNotFoundError):
    """An input file or folder that does not exist."""


# What the operating system's refusal means, for the errors a user can fix (space, rights, mounts).
ENVIRONMENT_PROBLEMS = {
    errno.ENOSPC: "no space left on the device (free space or write elsewhere)",
    errno.EDQUOT: "disk quota exceeded (free space or write elsewhere)",
    errno.EACCES: "permission denied (choose a path you may write, or fix its permissions)",
    errno.EPERM: "operation not permitted (choose a path you may write, or fix its permissions)",
    errno.EROFS: "read-only file system (write elsewhere)",
    errno.ENOTDIR: "a part of the path is a file, not a folder (choose another path)",
}


def environment_error(err: OSError) -> str | None:
    """One line naming the path and the problem for a full disk, missing rights or a read-only
    target; None for any other OS error (a bug, which keeps its traceback)."""
    problem = ENVIRONMENT_PROBLEMS.get(err.errno)
    if problem is None:
        return None
    return f"{err.filename or 'a file being written'}: {problem}"


def with_path(err: OSError, path: object) -> OSError:
    """The OS error naming ``path`` when it names no file itself (a failed write() names none)."""
    if err.filename is not None or err.errno is None:
        return err
    return type(err)(err.errno, err.strerror, str(path))
