"""The demo cohort: real student notebooks, correct ones in several styles and honest mistakes.

Each student is the release notebook with the three solution cells filled in. `EXPECTED` says
which test cells each student loses: the e2e tests hold nbgrader's scores to it exactly.
`python -m coursekit.course.cohort` rewrites demo/cohort/ from the release and this file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from coursekit import ASSIGNMENT
from coursekit.course.directory import Course

MODEL = '''class Model(object):
  def __init__(self):
    self.w = tf.Variable(1.0)
    self.b = tf.Variable(4.0)

  def __call__(self, x):
    return self.w * x + self.b

model = Model()'''

LOSS = '''def loss(predicted_y, target_y):
  return tf.reduce_mean(tf.square(predicted_y - target_y))'''

TRAIN = '''def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  dw, db = t.gradient(current_loss, [model.w, model.b])
  model.w.assign_sub(learning_rate * dw)
  model.b.assign_sub(learning_rate * db)
  return current_loss'''

MODEL_GROUPS = ("test_model_variables", "test_model_output")
LOSS_GROUPS = ("test_loss_values", "test_loss_properties")
TRAIN_GROUPS = ("test_train_step", "test_train_state")
# Convergence and plots: earned only by a notebook with at least one part that passes its own checks
# (docs/grading.md, "Grading policy"; the cohort's expectations are the default policy's, "each_mistake_once").
INTEGRATION = ("test_convergence_fit", "test_convergence_history", "test_plot_data", "test_plot_history",
               "test_plot_loss_weights")
EVERY_CELL = (*MODEL_GROUPS, *LOSS_GROUPS, *TRAIN_GROUPS, *INTEGRATION)


@dataclass(frozen=True)
class Student:
    student_id: str
    story: str
    model: str = MODEL
    loss: str = LOSS
    train: str = TRAIN
    loses: tuple[str, ...] = field(default=())  # grade ids of the test cells this work fails


def _train_body(update: str, *, returned: str = "current_loss", grads: str = "dw, db") -> str:
    return f'''def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  {grads} = t.gradient(current_loss, [model.w, model.b])
{update}
  return {returned}'''


STUDENTS: tuple[Student, ...] = (
    # ---- correct work, in different styles: full marks
    Student("correct_reference", "the lab's own solution"),
    Student(
        "correct_tf_module",
        "tf.Module model, (a-b)**2 loss, var.assign(var - lr*g)",
        model='''class Model(tf.Module):
  def __init__(self):
    super().__init__()
    self.w = tf.Variable(1.0, name="w")
    self.b = tf.Variable(4.0, name="b")

  def __call__(self, x):
    return x * self.w + self.b

model = Model()''',
        loss='''def loss(predicted_y, target_y):
  return tf.reduce_mean((predicted_y - target_y) ** 2)''',
        train='''def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as tape:
    current_loss = loss(model(inputs), outputs)
  grads = tape.gradient(current_loss, [model.w, model.b])
  for var, grad in zip([model.w, model.b], grads):
    var.assign(var - learning_rate * grad)
  return current_loss''',
    ),
    Student(
        "correct_keras_sgd",
        "Keras SGD.apply_gradients, loss with swapped arguments",
        loss='''def loss(predicted_y, target_y):
  return tf.reduce_mean(tf.square(target_y - predicted_y))''',
        train='''def train(model, inputs, outputs, learning_rate):
  optimizer = tf.keras.optimizers.SGD(learning_rate=learning_rate)
  with tf.GradientTape() as tape:
    current_loss = loss(model(inputs), outputs)
  grads = tape.gradient(current_loss, [model.w, model.b])
  optimizer.apply_gradients(zip(grads, [model.w, model.b]))
  return current_loss''',
    ),
    Student(
        "correct_tf_function",
        "@tf.function on train and loss, a helper for the gradients",
        loss='''@tf.function
def loss(predicted_y, target_y):
  return tf.math.reduce_mean(tf.math.squared_difference(predicted_y, target_y))''',
        train='''def gradients(model, inputs, outputs):
  with tf.GradientTape() as tape:
    current_loss = loss(model(inputs), outputs)
  return current_loss, tape.gradient(current_loss, [model.w, model.b])

@tf.function
def train(model, inputs, outputs, learning_rate):
  current_loss, (dw, db) = gradients(model, inputs, outputs)
  model.w.assign_sub(learning_rate * dw)
  model.b.assign_sub(learning_rate * db)
  return current_loss''',
    ),
    Student(
        "correct_noisy",
        "correct, but prints, warns and tf.prints (stderr) everywhere",
        model='''import sys, warnings

class Model(object):
  def __init__(self):
    print("creating a model")
    warnings.warn("initial values are fixed, not random")
    self.w = tf.Variable(1.0)
    self.b = tf.Variable(4.0)

  def __call__(self, x):
    print("calling the model", file=sys.stderr)
    return self.w * x + self.b

model = Model()''',
        train='''def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  dw, db = t.gradient(current_loss, [model.w, model.b])
  tf.print("gradients:", dw, db)
  model.w.assign_sub(learning_rate * dw)
  model.b.assign_sub(learning_rate * db)
  print("step done, loss", float(current_loss))
  return current_loss''',
    ),
    Student(
        "correct_trainable_variables",
        "tf.Module model; train over model.trainable_variables",
        model='''class Model(tf.Module):
  def __init__(self, **kwargs):
    super().__init__(**kwargs)
    self.w = tf.Variable(1.0)
    self.b = tf.Variable(4.0)

  def __call__(self, x):
    return tf.add(tf.multiply(self.w, x), self.b)

model = Model()''',
        train='''def train(model, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  variables = model.trainable_variables
  for variable, gradient in zip(variables, t.gradient(current_loss, variables)):
    variable.assign_sub(learning_rate * gradient)
  return current_loss''',
    ),
    # ---- the model
    Student(
        "model_int_init",
        "integer initial values: int32 variables",
        model=MODEL.replace("tf.Variable(1.0)", "tf.Variable(1)").replace("tf.Variable(4.0)", "tf.Variable(4)"),
        loses=MODEL_GROUPS,  # an int32 variable cannot multiply float inputs: the output breaks too
    ),
    Student(
        "model_swapped_init",
        "w starts at 4.0 and b at 1.0",
        model=MODEL.replace("tf.Variable(1.0)", "tf.Variable(X)").replace("tf.Variable(4.0)", "tf.Variable(1.0)")
        .replace("tf.Variable(X)", "tf.Variable(4.0)"),
        loses=("test_model_variables",),
    ),
    Student(
        "model_old_comment",
        "followed the seed lab's old comment: w=2.0, b=1.0",
        model=MODEL.replace("tf.Variable(1.0)", "tf.Variable(2.0)").replace("tf.Variable(4.0)", "tf.Variable(1.0)"),
        loses=("test_model_variables",),
    ),
    Student(
        "model_swapped_call",
        "returns b*x + w",
        model=MODEL.replace("return self.w * x + self.b", "return self.b * x + self.w"),
        loses=("test_model_output",),
    ),
    Student(
        "model_no_bias",
        "forgets the bias: returns w*x",
        model=MODEL.replace("return self.w * x + self.b", "return self.w * x"),
        loses=("test_model_output",),
    ),
    Student(
        "model_plain_floats",
        "w and b are Python floats, not variables",
        model=MODEL.replace("tf.Variable(1.0)", "1.0").replace("tf.Variable(4.0)", "4.0"),
        loses=MODEL_GROUPS,
    ),
    Student(
        "model_class_attributes",
        "variables as class attributes, shared by every Model()",
        model='''class Model(object):
  w = tf.Variable(1.0)
  b = tf.Variable(4.0)

  def __call__(self, x):
    return self.w * x + self.b

model = Model()''',
        loses=("test_model_variables",),
    ),
    Student(
        "model_numpy_call",
        "computes the output from .numpy() values: no gradient",
        model=MODEL.replace("return self.w * x + self.b", "return self.w.numpy() * x + self.b.numpy()"),
        loses=("test_model_output",),
    ),
    # ---- the loss
    Student(
        "loss_sum",
        "sums the squared errors instead of averaging",
        loss=LOSS.replace("reduce_mean", "reduce_sum"),
        loses=("test_loss_values",),
    ),
    Student(
        "loss_abs",
        "mean absolute error",
        loss=LOSS.replace("tf.square", "tf.abs"),
        loses=("test_loss_values",),
    ),
    Student(
        "loss_sqrt",
        "root mean squared error",
        loss='''def loss(predicted_y, target_y):
  return tf.sqrt(tf.reduce_mean(tf.square(predicted_y - target_y)))''',
        loses=("test_loss_values",),
    ),
    Student(
        "loss_no_square",
        "forgets to square the errors",
        loss='''def loss(predicted_y, target_y):
  return tf.reduce_mean(predicted_y - target_y)''',
        loses=("test_loss_values",),
    ),
    Student(
        "loss_no_reduce",
        "returns the per-example squared errors",
        loss='''def loss(predicted_y, target_y):
  return tf.square(predicted_y - target_y)''',
        loses=LOSS_GROUPS,
    ),
    Student(
        "loss_numpy",
        "computes the loss with NumPy: no gradient flows",
        loss='''def loss(predicted_y, target_y):
  return np.mean(np.square(predicted_y - target_y))''',
        loses=("test_loss_properties",),
    ),
    Student(
        "loss_half",
        "half the mean squared error",
        loss=LOSS.replace("return tf", "return 0.5 * tf"),
        loses=("test_loss_values",),
    ),
    # ---- the training step
    Student(
        "train_plus_gradient",
        "adds the gradient: gradient ascent",
        train=TRAIN.replace("assign_sub", "assign_add"),
        loses=("test_train_step",),
    ),
    Student(
        "train_no_learning_rate",
        "subtracts the raw gradient",
        train=_train_body("  model.w.assign_sub(dw)\n  model.b.assign_sub(db)"),
        loses=("test_train_step",),
    ),
    Student(
        "train_fixed_learning_rate",
        "always uses 0.1, ignoring the argument",
        train=TRAIN.replace("learning_rate * d", "0.1 * d"),
        loses=("test_train_step",),
    ),
    Student(
        "train_returns_new_loss",
        "returns the loss after the update",
        train=_train_body(
            "  model.w.assign_sub(learning_rate * dw)\n  model.b.assign_sub(learning_rate * db)",
            returned="loss(model(inputs), outputs)",
        ),
        loses=("test_train_step",),
    ),
    Student(
        "train_swapped_gradients",
        "unpacks the gradients in the wrong order",
        train=_train_body(
            "  model.w.assign_sub(learning_rate * dw)\n  model.b.assign_sub(learning_rate * db)", grads="db, dw"
        ),
        loses=("test_train_step",),
    ),
    Student(
        "train_only_w",
        "forgets to update the bias",
        train=_train_body("  model.w.assign_sub(learning_rate * dw)"),
        loses=("test_train_step",),
    ),
    Student(
        "train_new_variables",
        "replaces w and b with new variables instead of updating them",
        train=_train_body(
            "  model.w = tf.Variable(model.w - learning_rate * dw)\n"
            "  model.b = tf.Variable(model.b - learning_rate * db)"
        ),
        loses=("test_train_state",),
    ),
    Student(
        "train_global_model",
        "updates the notebook's global model instead of its argument",
        train='''def train(m, inputs, outputs, learning_rate):
  with tf.GradientTape() as t:
    current_loss = loss(model(inputs), outputs)
  dw, db = t.gradient(current_loss, [model.w, model.b])
  model.w.assign_sub(learning_rate * dw)
  model.b.assign_sub(learning_rate * db)
  return current_loss''',
        loses=TRAIN_GROUPS,
    ),
    # ---- several mistakes, each costing its own part only
    Student(
        "loss_sum_and_train_no_learning_rate",
        "sums in the loss and ignores the learning rate",
        loss=LOSS.replace("reduce_mean", "reduce_sum"),
        train=_train_body("  model.w.assign_sub(dw)\n  model.b.assign_sub(db)"),
        loses=("test_loss_values", "test_train_step"),
    ),
    # ---- nothing of the student's own passes: no convergence or plot points either (the grading policy)
    Student(
        "all_parts_wrong",
        "every part wrong: w and b swapped, a summed loss, no learning rate",
        model=MODEL.replace("tf.Variable(1.0)", "tf.Variable(X)").replace("tf.Variable(4.0)", "tf.Variable(1.0)")
        .replace("tf.Variable(X)", "tf.Variable(4.0)"),
        loss=LOSS.replace("reduce_mean", "reduce_sum"),
        train=_train_body("  model.w.assign_sub(dw)\n  model.b.assign_sub(db)"),
        loses=("test_model_variables", "test_loss_values", "test_train_step", *INTEGRATION),
    ),
    Student(
        "stubs_do_nothing",
        "do-nothing stubs: an empty Model class, a loss and a train that return 0.0",
        model="class Model(object):\n  pass\n\nmodel = Model()",
        loss="def loss(predicted_y, target_y):\n  return 0.0",
        train="def train(model, inputs, outputs, learning_rate):\n  return 0.0",
        loses=EVERY_CELL,
    ),
)


def fill(release: nbformat.NotebookNode, student: Student) -> nbformat.NotebookNode:
    """The release notebook with the student's code in the three solution cells."""
    notebook = nbformat.from_dict(json.loads(json.dumps(release)))
    answers = {"model": student.model, "loss": student.loss, "train": student.train}
    for cell in notebook.cells:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
        if grade_id in answers:
            cell.source = answers.pop(grade_id)
    if answers:
        raise ValueError(f"the release has no solution cells {sorted(answers)}")
    return notebook


def expected_scores(max_points: dict[str, float]) -> dict[str, dict[str, float]]:
    return {
        student.student_id: {
            grade_id: 0.0 if grade_id in student.loses else points for grade_id, points in max_points.items()
        }
        for student in STUDENTS
    }


def write(course: Course, out_dir: Path) -> list[Path]:
    release = nbformat.read(course.release_notebook, as_version=4)
    written = []
    for student in STUDENTS:
        path = out_dir / student.student_id / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(fill(release, student), path)
        written.append(path)
    return written


if __name__ == "__main__":
    course = Course.here()
    for path in write(course, course.demo_cohort):
        print(path.relative_to(course.root))
