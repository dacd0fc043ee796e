"""The error of a dataset folder that breaks the contract (below every dataset module)."""


class DatasetError(ValueError):
    """The folder breaks the contract in a way that stops reading it."""

    rule = "csv"
