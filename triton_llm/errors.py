"""Errors a client can fix. The runner turns them into Triton INVALID_ARG responses."""


class InvalidInput(ValueError):
    """A request field is wrong; the message names the field and the problem."""

    def __init__(self, field: str, problem: str):
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")
