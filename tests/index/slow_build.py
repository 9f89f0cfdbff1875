"""``python -m tests.index.slow_build IMAGES OUT``: build_index with the planted-detector net slowed to 0.1 s per
batch (so a test can kill it half-way)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from imagemachines.index import build_index

from .conftest import blob_model


def main() -> None:
    model = blob_model()
    forward = model.module.forward

    def slow(x):
        time.sleep(0.1)
        return forward(x)

    model.module.forward = slow
    build_index(model, Path(sys.argv[1]), Path(sys.argv[2]), k=4, chunk_size=3, batch_size=1, progress=False)


if __name__ == "__main__":
    main()
