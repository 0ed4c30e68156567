"""The instructor's reference numbers for Custom Training Basics: the seed lab's table, gradient descent in
closed form and the lab's data. The judge compares observations with these, in the grader process.

Never released, never imported in the student's kernel. The stand-in Model, loss and train the observer
needs to isolate one part are in stand_ins.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

TRUE_W = 3.0
TRUE_B = 2.0
NUM_EXAMPLES = 1000
SEED = 154
INITIAL_W = 1.0
INITIAL_B = 4.0
LEARNING_RATE = 0.1
EPOCHS = 15
LAB_DATA = Path(__file__).with_name("lab_data.npz")

# (w, b, loss) printed by the seed lab before each of its 15 steps.
SEED_LAB_TABLE: tuple[tuple[float, float, float], ...] = (
    (1.00, 4.00, 7.99292),
    (1.39, 3.59, 5.11726),
    (1.71, 3.27, 3.27636),
    (1.96, 3.01, 2.09782),
    (2.17, 2.81, 1.34329),
    (2.33, 2.64, 0.86019),
    (2.46, 2.51, 0.55086),
    (2.57, 2.41, 0.35279),
    (2.65, 2.33, 0.22595),
    (2.72, 2.26, 0.14472),
    (2.78, 2.21, 0.09270),
    (2.82, 2.17, 0.05938),
    (2.86, 2.13, 0.03804),
    (2.88, 2.10, 0.02437),
    (2.91, 2.08, 0.01561),
)
TABLE_WB_TOLERANCE = 0.03
TABLE_LOSS_RTOL = 0.12


def training_data() -> tuple[np.ndarray, np.ndarray]:
    """The notebook's data (seed 154, 1000 draws), stored by TensorFlow once: the judge does not import it.

    tests/test_checks.py checks the stored draw against TensorFlow's.
    """
    with np.load(LAB_DATA) as stored:
        return stored["xs"], stored["ys"]


@dataclass(frozen=True)
class Step:
    """One step of plain gradient descent on MSE, computed in float64 from the closed form."""

    w: float
    b: float
    loss: float


def gd_step(w: float, b: float, x: np.ndarray, y: np.ndarray, lr: float) -> Step:
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    residual = w * x + b - y
    dw = 2.0 * np.mean(residual * x)
    db = 2.0 * np.mean(residual)
    return Step(w=w - lr * dw, b=b - lr * db, loss=float(np.mean(residual**2)))
