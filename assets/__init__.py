"""The bundled demo's checkpoints and sample images, installed as the package ``catviz.assets``.

Read through :mod:`catviz.demo` (``importlib.resources``), never by a path relative to the code.
"""
