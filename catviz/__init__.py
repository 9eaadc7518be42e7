"""catviz: compare CAT with its baseline, image by image (the paper's Fig. 3, live)."""

__version__ = "0.1.0"
