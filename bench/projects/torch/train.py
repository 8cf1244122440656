"""Train a small MLP on synthetic data (no download) on the CPU, or the GPU when there is one;
write its weights and a summary to the artifacts folder."""

import json
import os
import sys

import torch
from app.model import FEATURES, device, make_model
from torch import nn

ARTIFACTS = os.environ.get("ARTIFACTS", "/artifacts")


def main() -> int:
    torch.manual_seed(42)
    where = device()
    x = torch.randn(4096, FEATURES)
    y = (x[:, :4].sum(dim=1) > 0).long()
    model = make_model().to(where)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(50):
        opt.zero_grad()
        loss = loss_fn(model(x.to(where)), y.to(where))
        loss.backward()
        opt.step()
    accuracy = (model(x.to(where)).argmax(dim=1).cpu() == y).float().mean().item()
    os.makedirs(ARTIFACTS, exist_ok=True)
    torch.save(model.state_dict(), os.path.join(ARTIFACTS, "model.pt"))
    summary = {"accuracy": round(accuracy, 4), "device": str(where), "torch": torch.__version__}
    with open(os.path.join(ARTIFACTS, "metrics.json"), "w") as fh:
        json.dump(summary, fh, sort_keys=True)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
