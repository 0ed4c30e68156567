"""The Custom Training Basics course kit: nbgrader steps, the demo cohort and the command line."""

ASSIGNMENT = "custom_training_basics"
# nbgrader's course id (nbgrader_config.py sets it): gradebook rows belong to it.
COURSE_ID = "custom-training"

# jsonschema checks the "iri" string format with rfc3987_syntax when that is installed (it comes with
# jupyter-events' extras), and building its grammar on import costs about 1.3 s in every process that
# imports nbformat: the coordinator, the writer, each worker's executor. No schema the kit or nbgrader
# validates uses that format, so every process that imports coursekit goes without it.
import sys as _sys  # noqa: E402

_sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[assignment]
