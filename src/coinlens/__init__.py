"""coinlens: catalogue museum coin collections from photographs."""

__version__ = "0.1.0"
