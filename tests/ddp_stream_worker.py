"""One torchrun rank of tests/test_data_stream.py: stream an image folder's epoch 0 with 1 worker for this rank's
shard (rank and world from torchrun's environment) and save the batches to $DUMP/rank<N>.pt."""

import os
import sys

import torch

from gantrain.data.image_folder import ImageFolder
from gantrain.data.loader import make_batch_stream

from conftest import data_cfg

if __name__ == "__main__":
    root, dump = sys.argv[1], sys.argv[2]
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    data = ImageFolder(data_cfg("image_folder", root=root, image_size=16, labels=False, cache="stream"))
    stream = make_batch_stream(data.split("train"), batch_size=2, seed=5, device=torch.device("cpu"), num_workers=1,
                               cache=data.cache_mode, rank=rank, world=world)
    torch.save([b["image"] for b in stream.epoch(0)], os.path.join(dump, f"rank{rank}.pt"))
