"""nbgrader's autograde steps the kit adds: restore cells, observe and judge, sanitize, check metadata."""
