"""The Custom Training Basics course kit: nbgrader steps, the demo cohort and the command line."""

ASSIGNMENT = "custom_training_basics"
# nbgrader's course id (nbgrader_config.py sets it): gradebook rows belong to it.
COURSE_ID = "custom-training"
