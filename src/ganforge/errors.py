"""The one exception type for user mistakes.

A :class:`UserError` carries a single line that says what was wrong and what
is allowed. The command line prints it and exits with code 2; anything else
that escapes is a bug and keeps its traceback.
"""
import errno
import reprlib

# errno values of a write that failed for want of room or rights: one line for the user, not a traceback
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """A mistake in what the user asked for (config, paths, data), not a bug."""

    exit_code = 2


_REPR = reprlib.Repr()        # keyword arguments only from Python 3.12
_REPR.maxlevel, _REPR.maxlist, _REPR.maxdict, _REPR.maxstring, _REPR.maxother, _REPR.maxlong = 2, 4, 4, 60, 60, 40


def shown(value) -> str:
    """``repr(value)`` cut to a few dozen characters: what an error echoes of a value the user gave."""
    return _REPR.repr(value)


def one_line(text: str, limit: int = 600) -> str:
    """A message as one printable line of at most ``limit`` characters (control characters escaped)."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in " ".join(str(text).split()))
    return text if len(text) <= limit else text[:limit - 1] + "…"
