"""The one user-facing error type of the CLI."""


class UserError(Exception):
    """Bad input from the user (missing file, bad flag combination, ...).

    The CLI prints it as one line, ``lnrnn <command>: error: <message>``, and exits with status 2
    (never a traceback).
    """
