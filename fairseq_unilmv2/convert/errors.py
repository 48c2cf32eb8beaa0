"""The one exception the converters raise: a message that names the bad input and the fix."""


class ConversionError(ValueError):
    """A checkpoint, config or vocabulary that cannot be converted as given.

    The command-line scripts print the message and exit with status 2 instead of a traceback.
    """
