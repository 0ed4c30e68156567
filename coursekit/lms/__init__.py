"""LMS in and out: rosters, submission archives, grade and feedback files for Canvas and Moodle."""
