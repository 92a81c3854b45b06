"""rmcourse: the small, tested helper package behind the reward-model course.

Each module holds one concept; the chapter notebooks import from here instead of pasting helpers.
"""
import os as _os

# The course runs offline: never let transformers/datasets reach for the hub.
_os.environ.setdefault("HF_HUB_OFFLINE", "1")
_os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
_os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
_os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

__version__ = "0.1.0"
