"""``steerkit demo``'s demos and the toy world they run on. Nothing outside this package and the CLI
imports it, but tests and benches borrow the toy's tiny models.

``steer_toy``    MAT-Steer end to end: the toy (or your model and data), trained, steered and judged
``focus_toy``    Focus Instruction Tuning on the focus toy, FIT against plain SFT per base
``focus_model``  Focus Instruction Tuning on a real model (``--focus --model``), over seeds, with plain SFT
``toy/``         the toy corpora (two-attribute reviews, the focus task) and the tiny Llama trained on them
"""
