"""User errors end a run with exit status 2 and one line; everything else is a bug."""
import errno
import functools
import sys

# A full disk (or quota, or a file over the size limit) is the user's to fix, not a bug.
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


class UserError(Exception):
    """Bad config, missing input, or too many bad rows: reported in one line, exit 2."""


def entry_point(fn):
    """Wrap a script's main(): a UserError prints one line and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except OSError as e:
            if e.errno not in _NO_SPACE:
                raise
            where = f"writing {e.filename}" if e.filename else "writing an output"
            print(f"error: {where}: {e.strerror or 'no space left on device'} (free some space and rerun; "
                  "this run is not recorded as done)", file=sys.stderr)
            sys.exit(2)

    return wrapper
