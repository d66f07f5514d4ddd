"""Run by test_train_ddp.py under torchrun: a tiny fit() with 2 gloo processes; each rank writes its result."""

import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_helpers import ToyDataset, toy_loss, toy_metrics, toy_model  # noqa: E402

from engine.train.config import TrainConfig  # noqa: E402
from engine.train.loop import fit  # noqa: E402

torch.set_num_threads(1)
out = Path(sys.argv[1])
config = TrainConfig(epochs=int(sys.argv[2]), batch_size=8, lr=1e-2, device="cpu")
result = fit(toy_model(), ToyDataset(64, 0), ToyDataset(27, 1), config=config, loss_fn=toy_loss,
             metrics_fn=toy_metrics, monitor="accuracy", mode="max", spec={"task": "toy", "architecture": "mlp"},
             card={"name": "toy-ddp"}, out_dir=out / "run")
rank = int(os.environ.get("RANK", "0"))
first = next(iter(torch.load(result.checkpoint_path, weights_only=True)["state_dict"].values()))
(out / f"rank{rank}.json").write_text(json.dumps({
    "world": int(os.environ.get("WORLD_SIZE", "1")), "best_epoch": result.best_epoch,
    "history": [{k: r[k] for k in ("train_loss", "val_loss", "accuracy")} for r in result.history],
    "weights_checksum": float(first.double().sum()),
}))
