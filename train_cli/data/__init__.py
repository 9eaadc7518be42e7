"""Dataset readers (COCO 2014, VOC2007, any COCO-format set, the offline demo set)."""

from .readers import DATASETS, DatasetError, MultiLabelSplit, Sample, load_split, load_splits

__all__ = ["DATASETS", "DatasetError", "MultiLabelSplit", "Sample", "load_split", "load_splits"]
