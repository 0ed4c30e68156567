"""Grading a cohort: intake from submitted/, workers that execute, one writer that records grades."""
