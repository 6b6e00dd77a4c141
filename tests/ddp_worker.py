"""`gantrain` as torchrun runs it, plus one thing for tests/test_scaleout.py: after training, each rank dumps
its weights and buffers to $GANTRAIN_TEST_DUMP/rank<N>.pt so the test can compare the ranks."""

import os
import sys

import torch

from gantrain.cli.train import main
from gantrain.trainer.trainer import Trainer

_fit = Trainer.fit


def _fit_and_dump(self: Trainer) -> dict[str, float]:
    metrics = _fit(self)
    state = {f"{n}.{k}": v.detach().cpu() for n, net in self.model.nets.items() for k, v in net.state_dict().items()}
    torch.save(state, os.path.join(os.environ["GANTRAIN_TEST_DUMP"], f"rank{self.dist.rank}.pt"))
    return metrics


Trainer.fit = _fit_and_dump
if __name__ == "__main__":
    sys.argv = ["gantrain", *sys.argv[1:]]
    main()
