"""The features both training and serving compute."""


def features(petal_length: float, petal_width: float) -> tuple[float, float]:
    return (petal_length, petal_width * 2.0)
