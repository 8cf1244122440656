"""Train a classifier on the iris data scikit-learn ships, write it to the artifacts directory."""

import json
import os
import sys

import joblib
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from preprocessing.features import FEATURES, transform

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")


def main() -> int:
    iris = load_iris()
    rows = [dict(zip(FEATURES, map(float, r))) for r in iris.data]
    x = transform(rows)
    x_train, x_test, y_train, y_test = train_test_split(x, iris.target, test_size=0.3, stratify=iris.target)
    model = LogisticRegression(max_iter=1000).fit(x_train, y_train)
    accuracy = float(model.score(x_test, y_test))
    os.makedirs(ARTIFACTS, exist_ok=True)
    joblib.dump({"model": model, "classes": list(iris.target_names)}, os.path.join(ARTIFACTS, "model.joblib"))
    with open(os.path.join(ARTIFACTS, "metrics.json"), "w") as fh:
        json.dump({"accuracy": accuracy, "n_train": len(y_train)}, fh, sort_keys=True)
    print(json.dumps({"trained": True, "accuracy": accuracy}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
