"""Dataset registry and readers (COCO 2014, VOC2007, any COCO-format set, the offline demo set)."""

from .readers import (
    BOX_COLUMNS,
    DATASETS,
    DatasetError,
    DatasetFormat,
    MultiLabelSplit,
    Sample,
    dataset_format,
    describe_datasets,
    load_split,
    load_splits,
    register_dataset,
)

__all__ = ["BOX_COLUMNS", "DATASETS", "DatasetError", "DatasetFormat", "MultiLabelSplit", "Sample", "dataset_format",
           "describe_datasets", "load_split", "load_splits", "register_dataset"]
