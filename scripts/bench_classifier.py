"""Time the digits metric classifier's first-run set-up from an empty cache and print its test accuracy.

Usage: PYTHONPATH=src python scripts/bench_classifier.py   (one thread, a fresh temporary cache folder)
"""

from __future__ import annotations

import tempfile
import time

import torch
from omegaconf import OmegaConf

from gantrain.data.digits import Digits
from gantrain.nets import classifier


def main() -> None:
    torch.set_num_threads(1)
    data = Digits(OmegaConf.create({"name": "digits", "image_size": 32, "flip": False}))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        _, protocol = classifier.load_or_train("digits", data.split("train"), data.split("test"), 1, 10,
                                               torch.device("cpu"), cache)
    print(f"classifier version {classifier.CLASSIFIER_VERSION}: {time.perf_counter() - start:.1f} s, "
          f"test accuracy {protocol['test_accuracy']:.4f}")


if __name__ == "__main__":
    main()
