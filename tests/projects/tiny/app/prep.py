def scale(values):
    """The preprocessing step: divide by the largest value."""
    top = max(values)
    return [v / top for v in values]
