"""An explicit reward model (EX-RM) on the same cached SmolLM2 state as `rmcourse.dpo.TopLayerDPO`.

DPO's implicit reward (IM-RM) is beta * log pi/pi_ref, with pi the policy whose top blocks DPO
trained. The matching explicit reward model (Lin et al. 2024, arXiv 2409.03650; the EX-RM of
Razin et al. 2025, arXiv 2507.07981) starts from the SAME blocks with the same weights, reads a
linear head off the last token's final hidden state instead of the LM head's log-probs, and is
trained with the Bradley-Terry loss on the same pairs, the same batches (same seed) and the same
optimiser settings. Both then differ only in how the reward is read off the model.

`TopLayerRewardModel(dpo)` copies the top `dpo.trainable_layers` blocks as they were before any
DPO step (`TopLayerDPO.reference_top_state`), so it can be built before or after `dpo.train`,
and runs on the `PreferenceCache` that `dpo.encode` built: the lower blocks are not run again.
"""
from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from typing import Iterator

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from rmcourse.dpo import DPOConfig, PreferenceCache, TopLayerDPO, _progress_bar, pair_batches
from rmcourse.validation import as_number

__all__ = ["TopLayerRewardModel", "RewardRun"]


@dataclass
class RewardRun:
    """History of an EX-RM run: one row per optimiser step (`loss`, `rewards/margins`,
    `rewards/accuracies` on the training batch), the time it took and the trained parameters."""

    history: pd.DataFrame
    train_seconds: float
    trainable_parameters: int


class TopLayerRewardModel:
    """A Bradley-Terry reward model: the top blocks of `dpo`'s model (reference weights, trained
    here), its frozen final norm, and a linear head on the last token's hidden state.

    The head starts at zero, so every reward is 0 before training, as DPO's implicit reward is.
    `rewards(cache)` gives (chosen_rewards, rejected_rewards); `train(cache, config)` trains.
    """

    def __init__(self, dpo: TopLayerDPO) -> None:
        if not isinstance(dpo, TopLayerDPO):
            raise TypeError(f"dpo must be a TopLayerDPO, got {type(dpo).__name__}")
        self.dpo = dpo
        top = dpo.model.model.layers[dpo.split:]
        self.layers = nn.ModuleList([copy.deepcopy(layer) for layer in top])
        self.layers.load_state_dict(dpo.reference_top_state())
        hidden = dpo.model.config.hidden_size
        self.head = nn.Linear(hidden, 1).to(dpo.device)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        for p in self.parameters():
            p.requires_grad_(True)

    def parameters(self) -> list[nn.Parameter]:
        """What trains: the copied top blocks and the head."""
        return [*self.layers.parameters(), *self.head.parameters()]

    @contextlib.contextmanager
    def _top(self) -> Iterator[nn.Module]:
        """The inner model running only this reward model's blocks (then the final norm)."""
        inner = self.dpo.model.model
        layers = inner.layers
        inner.layers = self.layers
        try:
            yield inner
        finally:
            inner.layers = layers

    def _rewards(self, cache: PreferenceCache, seq_idx: list[int]) -> torch.Tensor:
        """Rewards of the given sequences (grad flows to the blocks and the head)."""
        dpo = self.dpo
        lengths = [cache.input_ids[i].shape[0] for i in seq_idx]
        h = dpo._pad([cache.hidden[i] for i in seq_idx], max(lengths)).to(dpo.device)
        mask = dpo._pad([torch.ones(n, dtype=torch.long) for n in lengths], max(lengths)).to(dpo.device)
        with self._top() as upper, dpo._autocast():
            out = upper(inputs_embeds=h, attention_mask=mask, use_cache=False).last_hidden_state
        last = out[torch.arange(len(seq_idx), device=dpo.device), torch.tensor(lengths, device=dpo.device) - 1]
        with torch.autocast(dpo.device.type, enabled=False):
            return self.head(last.float()).squeeze(-1)

    def rewards(self, cache: PreferenceCache) -> tuple[torch.Tensor, torch.Tensor]:
        """(chosen_rewards, rejected_rewards) of the cached pairs, float32 CPU [N] each."""
        if not isinstance(cache, PreferenceCache):
            raise TypeError(f"cache must be a PreferenceCache from TopLayerDPO.encode(), got {type(cache).__name__}")
        from rmcourse.tokenization import length_grouped_batches

        n = len(cache)
        out = torch.empty(2 * n)
        lengths = [x.shape[0] for x in cache.input_ids]
        self.layers.eval()
        with torch.no_grad():
            for idx in length_grouped_batches(lengths, cache.batch_size, shuffle=False):
                out[list(idx)] = self._rewards(cache, list(idx)).float().cpu()
        return out[:n], out[n:]

    def train(self, cache: PreferenceCache, config: DPOConfig | None = None,
              head_learning_rate: float = 1e-2) -> RewardRun:
        """Bradley-Terry training with DPO's knobs: AdamW, the same batches for the same seed as
        `TopLayerDPO.train`, `config.learning_rate` for the blocks, grad-norm clipping.

        `config.beta` is not used (a BT reward has no temperature of its own). The zero-initialised
        head gets `head_learning_rate`: at the blocks' 1e-4 it would barely move in a few steps.
        """
        config = DPOConfig() if config is None else config
        if not isinstance(config, DPOConfig):
            raise TypeError(f"config must be a DPOConfig, got {type(config).__name__}")
        if not isinstance(cache, PreferenceCache):
            raise TypeError(f"cache must be a PreferenceCache from TopLayerDPO.encode(), got {type(cache).__name__}")
        if not as_number(head_learning_rate, "head_learning_rate") > 0:
            raise ValueError(f"head_learning_rate must be > 0, got {head_learning_rate}")
        n, bs = len(cache), config.per_device_train_batch_size
        steps_per_epoch = math.ceil(n / bs)
        opt = torch.optim.AdamW([{"params": list(self.layers.parameters()), "lr": config.learning_rate},
                                 {"params": list(self.head.parameters()), "lr": head_learning_rate}],
                                weight_decay=config.weight_decay)
        rows: list[dict] = []
        bar = _progress_bar(config.progress, config.num_train_epochs * steps_per_epoch, "EX-RM steps")
        start, step = time.perf_counter(), 0
        self.layers.train()
        try:
            # the same pairs in the same steps as TopLayerDPO.train with this config
            for pairs in pair_batches(n, bs, config.num_train_epochs, config.seed):
                r = self._rewards(cache, cache.sequences(pairs))
                margins = r[: len(pairs)] - r[len(pairs):]
                loss = -F.logsigmoid(margins).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self.parameters(), config.max_grad_norm)
                opt.step()
                step += 1
                m = margins.detach()
                rows.append({"step": step, "epoch": step / steps_per_epoch, "loss": loss.item(),
                             "rewards/margins": float(m.mean()),
                             "rewards/accuracies": float((m > 0).float().mean())})
                if bar is not None:
                    bar.update(1)
        finally:
            self.layers.eval()
            if bar is not None:
                bar.close()
        return RewardRun(history=pd.DataFrame(rows), train_seconds=time.perf_counter() - start,
                         trainable_parameters=sum(p.numel() for p in self.parameters()))
