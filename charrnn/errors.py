"""The one exception type the command line turns into a one-line message."""


class CharrnnError(Exception):
    """A problem the user can fix: bad input, a bad checkpoint, an impossible request."""
