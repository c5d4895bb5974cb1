"""What the reading step emits: one output whose elements say what they are (`ReadSplit`), since
runners disagree on tagged outputs (Beam's DaskRunner mishandles them)."""

#: What each element of `ReadSplit`'s one output is (see there).
CHUNK, DEAD_LETTERS, STATS = "chunk", "dead_letters", "stats"


def only(element, kind: str):
    """The values of `ReadSplit`'s elements of one kind."""
    if element[0] == kind:
        yield element[1]
