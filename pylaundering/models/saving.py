"""Writing a model to a folder, and keeping transformers quiet while it loads or saves one.

Below loading.py, decoder.py and tiny.py: each of them saves models, and loading.py reads the other two.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def quiet_transformers() -> None:
    import transformers  # import time: transformers is only needed once a model is loaded or saved

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # older transformers
        pass


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """``save_pretrained`` of model and tokenizer into ``out_dir``, written to a temp folder first
    and renamed, so an interrupted save never leaves a half-written model behind."""
    quiet_transformers()  # no "Writing model shards" bar: our own bars say what is happening
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
