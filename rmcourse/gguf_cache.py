"""A GGUF model converted once into a plain transformers folder, so that later loads skip the parse.

Loading SmolLM2 from its GGUF file takes 10-20 s on 2 CPU cores, almost all of it in gguf's
Python parse of the file's metadata (the 49k-token vocabulary and its merges), and every caller
(a reward model, a causal LM, a tokenizer) pays it again in each new process. The first load
writes what the parse produced, the tokenizer files and the dequantized float32 weights (about
540 MB for SmolLM2), to `artifacts/cache/gguf/<file>-<sha256[:16]>-transformers-<version>/`;
later loads read that folder in about a second. The tensors are the same bit for bit, and a
reward model's new head is drawn from the same random numbers, so no reward changes (a test
compares both against a load straight from the GGUF file).

The folder is keyed by the file's sha256 and by the transformers version (the conversion is
transformers' code). It is written to a temporary folder and renamed into place, so an
interrupted write leaves nothing half-made; a folder that lost a file is made again. Delete it to
reclaim the disk; `RMCOURSE_ARTIFACTS` moves it with the other artifacts.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

__all__ = ["CACHE_PARTS", "converted_gguf_folder"]

CACHE_PARTS = ("cache", "gguf")
WEIGHTS_FILE = "model.safetensors"
MARKER_FILE = "rmcourse-gguf.json"  # written last: its presence means the folder is complete
_NEEDED = (WEIGHTS_FILE, "tokenizer.json", "tokenizer_config.json", MARKER_FILE)


def converted_gguf_folder(folder: str | os.PathLike, gguf_file: str) -> Path:
    """The transformers folder (tokenizer + float32 causal-LM weights) converted from
    `folder/gguf_file`, made on first use. Load it with `from_pretrained(path, config=...)`,
    passing `rmcourse.models.gguf_config(folder, gguf_file)` as the config."""
    import transformers

    from rmcourse.models import file_sha256
    from rmcourse.paths import artifacts_dir

    path = Path(folder) / gguf_file
    if not path.is_file():
        raise FileNotFoundError(f"no GGUF file at {path}")
    sha = file_sha256(path)
    name = f"{Path(gguf_file).stem}-{sha[:16]}-transformers-{transformers.__version__}"
    base = artifacts_dir(*CACHE_PARTS)
    target = base / name
    if all((target / f).is_file() for f in _NEEDED):
        return target
    if target.exists():  # made by us but lost a file (an interrupted delete?): make it again
        shutil.rmtree(target)
    # float32 weights take about 5.5x a 4-bit file: refuse rather than fill the disk
    need = 6 * path.stat().st_size
    free = shutil.disk_usage(base).free
    if free < need + (1 << 30):
        raise OSError(f"cannot convert {gguf_file}: it needs about {need // 2**20} MiB in {base} and "
                      f"{free // 2**20} MiB are free (1 GiB is kept spare); free some space or "
                      "point RMCOURSE_ARTIFACTS at a disk with room")
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=base))
    try:
        _convert(str(folder), gguf_file, tmp, sha)
        try:
            os.rename(tmp, target)
        except OSError:
            if not all((target / f).is_file() for f in _NEEDED):
                raise
            # another process finished the same folder first: keep theirs
    except OSError as err:
        raise OSError(f"cannot write the converted {gguf_file} to {base} ({err}); it needs about "
                      f"{6 * path.stat().st_size // 2**20} MiB free there, or point "
                      "RMCOURSE_ARTIFACTS at a writable folder") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _convert(folder: str, gguf_file: str, out: Path, sha: str) -> None:
    """Parse the GGUF file once (tokenizer and weights) and write both as transformers files."""
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rmcourse.models import _gguf_parsed_once, gguf_config, quiet_transformers

    with quiet_transformers(), _gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
        config = gguf_config(folder, gguf_file)
        # no random numbers are drawn for a causal LM whose every weight is in the file, but the
        # caller's stream is kept as it was all the same
        with torch.random.fork_rng(devices=[]):
            model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, config=config,
                                                         dtype=torch.float32)
    # transformers refuses to save a model it loaded from GGUF, so the tensors are written
    # directly. Tied tensors (lm_head = embed_tokens) are stored once, under their first name,
    # which is the name a sequence-classification model looks for.
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in model.state_dict().items():
        if value.data_ptr() in seen:
            continue
        seen.add(value.data_ptr())
        tensors[key] = value.detach().contiguous()
    save_file(tensors, str(out / WEIGHTS_FILE), metadata={"format": "pt"})
    config.save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / MARKER_FILE).write_text(json.dumps({"gguf_file": gguf_file, "sha256": sha}, indent=1))
