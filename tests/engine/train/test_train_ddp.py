"""A real 2-process DDP run on CPU (torchrun, gloo backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).with_name("ddp_fit_script.py")


def test_two_process_ddp_on_cpu(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[3])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(SCRIPT),
           str(tmp_path), "3"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == ranks[1]["world"] == 2
    # both ranks saw the same gathered validation metrics and hold the same (synchronised) best weights
    assert ranks[0]["history"] == ranks[1]["history"] and ranks[0]["best_epoch"] == ranks[1]["best_epoch"]
    assert ranks[0]["weights_checksum"] == ranks[1]["weights_checksum"]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["best.card.json", "best.pt", "config.toml", "last.pt", "learning_curves.png", "metrics.csv"])
    card = json.loads((run / "best.card.json").read_text())
    assert card["training"]["world_size"] == 2
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 4
