"""Stand-ins for one part while another is observed: the reference Model, loss and train.

Never in the student's kernel: the grader sends the text of the stand-ins for the other parts only
(`grader_tests.stand_ins_source(parts)`) to a probe child (coursekit/kernels/probe_child.py), which execs it into a
namespace of its own. Only `tf` is available to it there.
"""

import tensorflow as tf


class Model(tf.Module):
    # A tf.Module, so a student's train() that reads model.trainable_variables works on it too.
    def __init__(self):
        super().__init__()
        self.w = tf.Variable(1.0)
        self.b = tf.Variable(4.0)

    def __call__(self, x):
        return self.w * x + self.b


def loss(predicted_y, target_y):
    return tf.reduce_mean(tf.square(predicted_y - target_y))


def train(model, inputs, outputs, learning_rate):
    with tf.GradientTape() as tape:
        current_loss = loss(model(inputs), outputs)
    dw, db = tape.gradient(current_loss, [model.w, model.b])
    model.w.assign_sub(learning_rate * dw)
    model.b.assign_sub(learning_rate * db)
    return current_loss
