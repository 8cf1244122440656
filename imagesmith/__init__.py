"""imagesmith: one pinned, reproducible image for training and serving.

Data flows one way: spec -> lock -> parity manifest -> Dockerfile -> build -> labels -> verify.
"""

__version__ = "0.1.0"
