"""The exception type the command line turns into a one-line message, and the wording
that messages share."""


class CharrnnError(Exception):
    """A problem the user can fix: bad input, a bad checkpoint, an impossible request."""


def counted(number: int, noun: str) -> str:
    """A count for a message: "1 character", "2,000 characters"."""
    return f"{number:,} {noun}{'' if number == 1 else 's'}"


def shown_characters(chars: list[str], limit: int = 20) -> str:
    """Characters for a message: quoted as one string, cut after ``limit`` of them."""
    return repr("".join(chars[:limit]) + ("..." if len(chars) > limit else ""))
