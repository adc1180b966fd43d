"""Tiny models built on the spot (no download): a byte-level BPE tokenizer trained on a corpus, a small
Llama policy, a small reward encoder, and a supervised warm start. Used by the demo and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

FORMAT_TOKENS = ("<think>", "</think>", "<answer>", "</answer>")


def build_tokenizer(texts: Sequence[str], vocab_size: int = 600) -> Any:
    """A byte-level BPE tokenizer trained on `texts`, as a transformers fast tokenizer with pad/eos/bos.
    The `<think>`/`<answer>` tags are single ordinary tokens (decoding keeps them)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<eos>", "<bos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>"
    )
    tokenizer.add_tokens(list(FORMAT_TOKENS))
    return tokenizer


def build_policy(tokenizer: Any, hidden: int = 128, layers: int = 2, heads: int = 4, seed: int = 0) -> Any:
    """A small Llama causal LM, randomly initialised with `seed`, sized for `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config)


def build_reward_backbone(
    tokenizer: Any, out_dir: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Save a small randomly initialised BERT encoder with `tokenizer` to `out_dir` (a backbone for
    `pgrpo rm train`)."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    out = Path(out_dir)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def warm_start(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    completions: Sequence[str],
    steps: int = 200,
    learning_rate: float = 3e-3,
    batch_size: int = 16,
    seed: int = 0,
    target_loss: float | None = None,
    window: int = 10,
) -> list[float]:
    """Supervised fine-tuning on (prompt, completion) pairs, loss on the completion (and its eos) only.
    With `target_loss`, it stops at the first step where the mean loss of the last `window` steps is at
    or below it (a rule that lands on the same policy quality on any machine), `steps` being the cap;
    without, it runs `steps` steps. Returns the loss of each step taken."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    rows = []
    for prompt, completion in zip(prompts, completions, strict=True):
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append((p + c, [-100] * len(p) + c))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 20))
    model.train()
    losses: list[float] = []
    for _ in range(steps):
        batch = [rows[i] for i in torch.randint(len(rows), (batch_size,), generator=generator).tolist()]
        width = max(len(ids) for ids, _ in batch)
        ids = torch.tensor([i + [tokenizer.pad_token_id] * (width - len(i)) for i, _ in batch])
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in batch])
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in batch])
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        recent = losses[-window:]
        if target_loss is not None and len(recent) == window and sum(recent) / window <= target_loss:
            break
    model.eval()
    return losses


def greedy_completions(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int = 96
) -> list[str]:
    """Greedy decoding of each prompt (left-padded batches), special tokens dropped."""
    import torch

    model.eval()  # a model left in training mode with gradient checkpointing generates garbage
    tokenizer.padding_side = "left"
    out: list[str] = []
    for start in range(0, len(prompts), 32):
        chunk = list(prompts[start : start + 32])
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            ids = model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out
