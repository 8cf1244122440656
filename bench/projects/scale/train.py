"""Train a LightGBM classifier on a synthetic tabular data set; write it and its data to the artifacts.

The data set is made by scikit-learn (no download), kept as a pandas DataFrame and written as
Parquet through pyarrow, as a real pipeline stores its training snapshot.
"""

import json
import os
import sys

import joblib
import lightgbm as lgb
import pandas as pd
from app.features import FEATURES
from sklearn.datasets import make_classification
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")


def main() -> int:
    x, y = make_classification(n_samples=5000, n_features=len(FEATURES), n_informative=6, random_state=42)
    frame = pd.DataFrame(x, columns=list(FEATURES)).assign(label=y)
    os.makedirs(ARTIFACTS, exist_ok=True)
    frame.to_parquet(os.path.join(ARTIFACTS, "train.parquet"), engine="pyarrow")
    x_train, x_test, y_train, y_test = train_test_split(
        frame[list(FEATURES)], frame["label"], test_size=0.25, random_state=42
    )
    model = lgb.LGBMClassifier(n_estimators=100, num_leaves=31, random_state=42, verbose=-1).fit(x_train, y_train)
    auc = float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))
    joblib.dump(model, os.path.join(ARTIFACTS, "model.joblib"))
    with open(os.path.join(ARTIFACTS, "metrics.json"), "w") as fh:
        json.dump({"auc": auc, "n_train": len(y_train)}, fh, sort_keys=True)
    print(json.dumps({"trained": True, "auc": auc}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
