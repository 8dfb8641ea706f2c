"""An uploaded eval file, checked in the request (it is small) before anything is stored."""

from __future__ import annotations

import tempfile
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile
from django.utils.translation import gettext as _

from training.engine.data.formats import format_for_name
from training.engine.data.records import DatasetError, DataSpec, inspect_file, read_dataset
from training.engine.evaluate.examples import EvalError, expected_output

MAX_EVAL_FILE_MB = 5


def check_eval_file(upload: UploadedFile, template: str, custom_template: str) -> DataSpec:
    """The DataSpec that reads ``upload`` as an eval set; raise ``ValueError`` with a
    message for the form when it cannot be one (too big, unreadable, no expected outputs)."""
    fmt = format_for_name(upload.name or "")
    if fmt is None:
        raise ValueError(_("An eval file is a .jsonl, .json, .csv or .txt file."))
    if upload.size and upload.size > MAX_EVAL_FILE_MB * 2**20:
        raise ValueError(_("An eval file may hold at most %(n)d MB.") % {"n": MAX_EVAL_FILE_MB})
    with tempfile.NamedTemporaryFile(suffix=f".{fmt}") as tmp:
        for chunk in upload.chunks():
            tmp.write(chunk)
        tmp.flush()
        try:
            found = inspect_file(Path(tmp.name), fmt)
            if found.shape is None or found.shape == "text":
                raise EvalError(
                    _(
                        "The eval file has no expected outputs: each row needs a prompt and "
                        "its answer (instruction/output, prompt/completion or chat messages)."
                    )
                )
            spec = DataSpec(fmt, found.shape, found.mapping, "line", template, custom_template)
            records = read_dataset(Path(tmp.name), spec)
            for record in records:
                expected_output(record)
        except DatasetError as exc:
            raise ValueError(
                _("The eval file cannot be read as an eval set: %(why)s") % {"why": exc}
            ) from exc
        except EvalError as exc:
            raise ValueError(str(exc)) from exc
    upload.seek(0)
    return spec
