"""The one error type for a user's mistakes, so that the ``spino`` command can tell them from bugs.

An ``InputError`` says which file (or setting) is wrong and what is wrong with it, in one line;
the command prints just that line. Any other exception is a bug in spino and keeps its traceback.
Both subclass the built-in errors they refine, so callers may still catch ValueError or
FileNotFoundError.
"""

from __future__ import annotations



class InputError(ValueError):
    """A bad input file, setting or argument: the message starts with the file and says the problem."""


class MissingFileError(InputError, FileNotFoundError):
    """An input file or folder that does not exist."""
