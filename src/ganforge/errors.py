"""The one exception type for user mistakes.

A :class:`UserError` carries a single line that says what was wrong and what
is allowed. The command line prints it and exits with code 2; anything else
that escapes is a bug and keeps its traceback.
"""
import errno

# errno values of a write that failed for want of room or rights: one line for the user, not a traceback
DISK_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EACCES, errno.EPERM}


class UserError(Exception):
    """A mistake in what the user asked for (config, paths, data), not a bug."""

    exit_code = 2
