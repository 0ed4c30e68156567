"""The course and its state: where things are, the demo cohort, the due date, the gradebook, staleness."""
