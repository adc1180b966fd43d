"""Inference-time search over (reasoning, code): ORPS (arXiv 2412.15118) and the baselines it is
measured against (CoT, best-of-n, Reflexion-style refine), behind `pgrpo search`.

Modules, in the order data flows: `tasks` (visible/hidden split; search sees visible tests only),
`prompts` (fills in `pgrpo/prompts/search_*.txt`), `metrics` (static metrics and ω), `tree` (nodes,
rankings, final selection), `methods` (the algorithms, one problem each), `engine` (batches all
problems' requests, counts calls/tokens/executions, enforces the budget), `run` (hidden-test scoring,
efficiency, outputs, report), `cli`.
"""
