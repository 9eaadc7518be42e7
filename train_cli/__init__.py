"""Training and evaluation of catviz models: ``catviz-train`` and ``catviz-eval``."""
