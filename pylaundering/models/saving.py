"""Writing a model to a folder, and keeping transformers quiet while it loads or saves one.

Below loading.py, decoder.py and tiny.py: each of them saves models, and loading.py reads the other two.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path


def quiet_transformers() -> None:
    import transformers  # import time: transformers is only needed once a model is loaded or saved

    transformers.logging.set_verbosity_error()
    try:
        transformers.utils.logging.disable_progress_bar()
    except AttributeError:  # older transformers
        pass


def save_model(model, tokenizer, out_dir: str | Path) -> Path:
    """``save_pretrained`` of model and tokenizer into ``out_dir``, written to a temporary folder of its own
    (``tempfile.mkdtemp`` next to ``out_dir``, so two savers never share one) and renamed into place, so an
    interrupted save never leaves a half-written model behind and two concurrent savers each leave a
    complete one (the last rename wins)."""
    quiet_transformers()  # no "Writing model shards" bar: our own bars say what is happening
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it 0700: the saved folder follows the umask
        _replace_dir(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return out


def _umask() -> int:
    try:  # Linux: read it (setting it to read it back races with other threads creating files)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _replace_dir(src: Path, dst: Path) -> None:
    """Renames the folder ``src`` to ``dst``; an existing ``dst`` is first renamed aside (to a unique name)
    and removed. rename(2) cannot replace a non-empty folder, so with another saver in between, retry."""
    for _ in range(100):
        try:
            os.rename(src, dst)
            return
        except OSError as e:
            if e.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not dst.is_dir():
                raise
        old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
        try:
            os.rename(dst, old / dst.name)
        except FileNotFoundError:  # another saver moved it first
            pass
        shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not move the saved model into {dst}: other processes keep replacing it")
