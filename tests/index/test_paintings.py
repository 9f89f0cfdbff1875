"""Real paintings: MobileNetV2 (ImageNet) with a linear head trained on landscapes and portraits; among the
held-out paintings of both labels, each class logit's top examples carry its label. Skipped without ../shared.
The full run (three labels, all seven labels indexed) is in benchmarks/bench_index.py and docs/benchmarks.md."""

from __future__ import annotations

import pytest
from benchmarks.paintings_precision import PAINTINGS, run


@pytest.mark.slow
@pytest.mark.weights
@pytest.mark.timeout(900)
def test_class_logits_top_examples_are_of_their_label(mobilenet_weights, tmp_path):
    if not (PAINTINGS / "labels.csv").is_file():
        pytest.skip(f"{PAINTINGS} is absent")
    labels = ("landscape", "portrait")
    precision, _index, facts = run(tmp_path, labels=labels, n_train=12, n_val=4, image_size=64, epochs=3,
                                   freeze="features.18", lr=3e-3, ks=(10,), heldout_labels=labels)
    assert facts["counts"] == {"landscape": 218 - 16, "portrait": 44 - 16}
    share = facts["counts"]["portrait"] / facts["n_indexed"]  # what chance would give: 0.12
    assert precision["portrait"][10] >= 0.7 > 5 * share, precision
    assert precision["landscape"][10] >= 0.9, precision
