"""Grades out of the gradebook: scores per student and per group, and a spreadsheet-safe CSV."""
