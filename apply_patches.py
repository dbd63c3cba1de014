#!/usr/bin/env python3
"""Patch upstream CenterNet (see `python apply_patches.py --help`); all logic is in centernet_trt.patch."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run from a checkout without installing

from centernet_trt.patch import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
