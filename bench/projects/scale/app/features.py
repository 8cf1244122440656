"""The model's input columns, shared by training and serving."""

FEATURES = tuple(f"f{i:02d}" for i in range(12))
