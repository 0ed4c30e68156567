"""Hidden checks for Custom Training Basics. Never released to students.

Run them against any notebook with `pytest grader_tests --notebook PATH`.
"""
