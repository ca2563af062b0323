"""The exception type the command line turns into a one-line message, and the wording
that messages share."""


class CharrnnError(Exception):
    """A problem the user can fix: bad input, a bad checkpoint, an impossible request."""


class SettingsConflict(CharrnnError):
    """Settings that cannot be given together, or one given without another it needs (the
    command line reports it as a usage error)."""


class CharrnnWarning(UserWarning):
    """A note for the caller: something skipped or changed that did not stop the work (the
    command line prints it as "note: ..." on stderr)."""


def setting_name(setting: str) -> str:
    """A setting as messages name it: ```hidden_size``` in backquotes, as the API takes it;
    the command line shows each such name as its option, ``--hidden-size``."""
    return f"`{setting}`"


def counted(number: int, noun: str) -> str:
    """A count for a message: "1 character", "2,000 characters"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def shown_characters(chars: list[str], limit: int = 20) -> str:
    """Characters for a message: quoted as one string, cut after ``limit`` of them."""
    return repr("".join(chars[:limit]) + ("..." if len(chars) > limit else ""))
