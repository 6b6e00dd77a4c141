"""Datasets (each a `DataSource` named by `data._target_`) and the resumable batch streams that feed the trainer."""

from gantrain.data.base import DataInfo, DataSource, InMemoryImages, InMemorySplit
from gantrain.data.loader import BatchStream, make_batch_stream

__all__ = ["BatchStream", "DataInfo", "DataSource", "InMemoryImages", "InMemorySplit", "make_batch_stream"]
