"""nbgrader's CheckCellMetadata, with the same verdicts at a fraction of the cost.

nbgrader validates each cell's nbgrader metadata with `jsonschema.validate(metadata, schema)`, and
`jsonschema.validate` first checks the schema itself against the JSON Schema meta-schema: about 2.7 ms a
cell, for a schema that never changes. With 22 nbgrader cells, twice per autograde, in the worker and
again in the writer, that was about 0.25 s of CPU per submission. `CheckCellMetadataCached` checks each
schema once per process and keeps its validator; errors are the ones `jsonschema.validate` raises
(its `best_match`), and nbgrader's own checks after the schema (grade ids, points) run unchanged.
"""

from __future__ import annotations

import json
import threading
import traceback
from typing import Any

import jsonschema
from jsonschema.exceptions import best_match
from nbformat import NotebookNode
from nbgrader.nbgraderformat import MetadataValidator, ValidationError, common
from nbgrader.preprocessors import CheckCellMetadata


class _SchemaCheckedOnce:
    """Stands in for the `jsonschema` module where nbgrader's metadata validator calls `jsonschema.validate`."""

    def __init__(self) -> None:
        self._validators: dict[str, Any] = {}
        self._lock = threading.Lock()

    def validate(self, instance: Any, schema: dict[str, Any]) -> None:
        key = json.dumps(schema, sort_keys=True)
        with self._lock:
            validator = self._validators.get(key)
            if validator is None:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validator = self._validators[key] = cls(schema)
        error = best_match(validator.iter_errors(instance))
        if error is not None:
            raise error

    def __getattr__(self, name: str) -> Any:  # anything else nbgrader's module uses: the real jsonschema's
        return getattr(jsonschema, name)


_CACHED = _SchemaCheckedOnce()


class _CachedMetadataValidator(MetadataValidator):
    def validate_nb(self, nb: NotebookNode) -> None:
        real = common.jsonschema
        common.jsonschema = _CACHED  # type: ignore[assignment]
        try:
            super().validate_nb(nb)
        finally:
            common.jsonschema = real


class CheckCellMetadataCached(CheckCellMetadata):
    """CheckCellMetadata (same checks, same errors, same log), the schema checked once per process."""

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        try:
            _CachedMetadataValidator().validate_nb(nb)
        except ValidationError:
            self.log.error(traceback.format_exc())
            msg = "Notebook failed to validate; the nbgrader metadata may be corrupted."
            self.log.error(msg)
            raise ValidationError(msg) from None
        return nb, resources
