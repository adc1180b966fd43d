"""The thinking reward model: its preference data, its training and its pairwise benchmark.

- `pairs`: the preference-pair JSONL format (docs/formats.md) and the OD method that builds pairs, with an
  LLM or, offline, from reference solutions (`synthetic`).
- `natural`: LCB-RB-style pairs from sampled traces, reasoning whose code passed over reasoning whose
  code failed.
- `train`: Bradley–Terry training on pairs; `score`: scoring reasoning with a trained model (and
  `format_input`, the one text the model reads everywhere); `bench`: pairwise accuracy on pairs;
  `overlap`: keeping benchmark pairs on problems the model never saw.

Importing this package is cheap: torch and transformers are imported by the modules that need them.
"""

from pgrpo.rm.pairs import Pair

__all__ = ["Pair"]
