"""The Custom Training Basics course kit: nbgrader steps, the demo cohort and the command line."""

ASSIGNMENT = "custom_training_basics"
