"""Put back what a student removed or changed in the assignment's own cells, before anything runs.

nbgrader's OverwriteCells restores the source, points and checksum of the protected cells that are still
in the submission, but a deleted test cell simply goes ungraded, and a cell whose nbgrader metadata was
edited (`"grade": false`, a new grade id, a solution flag) escapes it. `RestoreAssignmentCells` runs in
nbgrader's first (sanitizing) pass, before OverwriteCells:
- every cell of the release that carries a grade id (test, solution and locked cells) and is missing from
  the submission is inserted again, after the nearest earlier such cell that is there, so a correct
  solution whose test cells were deleted still earns every point;
- each of those cells gets the release's nbgrader metadata back (points, flags, grade id, checksum);
- nbgrader metadata on any other cell is removed, so a student cannot add graded cells of their own.
OverwriteCells then restores each protected cell's source (hidden tests included) from the gradebook.

Hidden tests: the release's test cells lack them by design (nbgrader's generate_assignment records the
source with hidden tests in the gradebook, then clears them and recomputes the release's checksums). So
OverwriteCells, which compares each locked cell with the gradebook's, took every honest test cell for an
edited one and warned "Attribute 'checksum' ... has changed!" for every cell with hidden tests, in every
submission. Here a locked cell that is exactly the released one (its checksum is the release's) gets the
gradebook's source, hidden tests included, so OverwriteCells warns only about cells a student changed.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import nbformat
from nbformat import NotebookNode
from nbgrader import utils
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Unicode


def _grade_id(cell: NotebookNode) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader")
    return meta.get("grade_id") if isinstance(meta, dict) else None


class RestoreAssignmentCells(NbGraderPreprocessor):  # enabled by default, unlike nbconvert's base
    release_root = Unicode("", help="the course's release folder (nbgrader_config.py sets it)").tag(config=True)

    def preprocess(self, nb: NotebookNode, resources: dict[str, Any]):
        info = resources["nbgrader"]
        path = Path(self.release_root) / info["assignment"] / f"{info['notebook']}.ipynb"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} is missing: run `coursekit release` (nbgrader generate_assignment) before grading, "
                "so deleted test cells can be put back."
            )
        release = nbformat.read(path, as_version=4)
        protected = [cell for cell in release.cells if _grade_id(cell)]
        by_id = {_grade_id(cell): cell for cell in protected}
        for cell in nb.cells:
            grade_id = _grade_id(cell)
            if grade_id in by_id:
                cell.metadata["nbgrader"] = copy.deepcopy(by_id[grade_id].metadata["nbgrader"])
                for key in ("editable", "deletable"):
                    if key in by_id[grade_id].metadata:
                        cell.metadata[key] = by_id[grade_id].metadata[key]
            elif "nbgrader" in cell.get("metadata", {}):
                self.log.warning("Removing nbgrader metadata the release does not have (grade id %r)", grade_id)
                del cell.metadata["nbgrader"]
        present = {_grade_id(cell) for cell in nb.cells} - {None}
        for position, cell in enumerate(protected):
            grade_id = _grade_id(cell)
            if grade_id in present:
                continue
            self.log.warning("Cell %s was deleted from the submission: putting it back", grade_id)
            earlier = [_grade_id(c) for c in protected[:position] if _grade_id(c) in present]
            index = 0
            if earlier:
                index = next(i for i, c in enumerate(nb.cells) if _grade_id(c) == earlier[-1]) + 1
            restored = copy.deepcopy(cell)
            if restored.cell_type == "code":
                restored.outputs = []
                restored.execution_count = None
            nb.cells.insert(index, restored)
            present.add(grade_id)
        self._put_hidden_tests_back(nb, info, by_id)
        return nb, resources

    def _put_hidden_tests_back(self, nb: NotebookNode, info: dict[str, Any], by_id: dict[str, NotebookNode]) -> None:
        recorded = _locked_sources(info)
        for cell in nb.cells:
            grade_id = _grade_id(cell)
            release = by_id.get(grade_id)
            if release is None or grade_id not in recorded or not utils.is_locked(cell):
                continue
            checksum, source = recorded[grade_id]
            untouched = utils.compute_checksum(cell) == release.metadata["nbgrader"].get("checksum")
            if untouched and cell.source != source:
                cell.source = source
                cell.metadata["nbgrader"]["checksum"] = checksum


def _locked_sources(info: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{grade id: (checksum, source)} of the notebook's locked cells as the gradebook records them."""
    try:
        with Gradebook(info["db_url"]) as gradebook:
            notebook = gradebook.find_notebook(info["notebook"], info["assignment"])
            return {cell.name: (cell.checksum, cell.source) for cell in notebook.source_cells if cell.locked}
    except (KeyError, MissingEntry):  # no gradebook in resources, or not released: OverwriteCells says so
        return {}
