"""`coursekit report`: how the class did, as one self-contained HTML page and its data in CSV.

`collect.py` gathers what the course recorded (gradebook scores and late penalties, the judge's hint ids in
the autograded notebooks, intake and the last grading run in `grading-run.json`); `stats.py` computes the
numbers from plain data; `page.py` draws the figures and renders `templates/report.html.j2`. docs/report.md.
"""
