"""The inputs the observer gives the student's objects. Shared with the judge, which recomputes expectations.

Only NumPy here: the judge imports this without TensorFlow.
"""

from __future__ import annotations

import numpy as np

INITIAL_W = 1.0
INITIAL_B = 4.0
TRUE_W = 3.0
TRUE_B = 2.0
SEED = 154
NUM_EXAMPLES = 1000
LEARNING_RATE = 0.1
EPOCHS = 15

# Model: the check sets w and b itself, so a wrong initial value costs model-variable points only.
MODEL_SET = (1.5, -0.5)
MODEL_SCALAR_X = 2.0
MODEL_X = np.array([-1.5, 0.0, 0.5, 2.0, 3.0], dtype=np.float32)
MODEL_RESET = (3.0, -2.0)

LOSS_KNOWN = (
    np.array([1.0, 2.0, 3.0, 4.0], dtype=np.float32),
    np.array([2.0, 2.0, 5.0, 0.0], dtype=np.float32),
)


def loss_random() -> list[tuple[int, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(20261125)
    cases = []
    for size in (1, 7, 1000):
        predicted = rng.normal(size=size).astype(np.float32) * 3
        target = rng.normal(size=size).astype(np.float32) * 3
        cases.append((size, predicted, target))
    return cases


LOSS_PROPERTIES = (
    np.array([0.5, -1.0, 2.0], dtype=np.float32),
    np.array([1.0, 1.0, 1.0], dtype=np.float32),
)

TRAIN_X = np.array([-1.0, 0.5, 2.0, 3.0], dtype=np.float32)
TRAIN_Y = (TRUE_W * TRAIN_X + TRUE_B).astype(np.float32)
TRAIN_RATES = (0.1, 0.05, 0.3)

PARTS = ("Model", "loss", "train")
# The cells judged on a training run of the notebook's schedule (which mix of parts: the judge decides).
RUN_GRADE_IDS = ("test_convergence_fit", "test_convergence_history")
RUN = "run"  # the probe child's request for one such run (grader_observe.kernel.collect_apart)
PART_GRADE_IDS = {
    "Model": ("test_model_variables", "test_model_output"),
    "loss": ("test_loss_values", "test_loss_properties"),
    "train": ("test_train_step", "test_train_state"),
}
