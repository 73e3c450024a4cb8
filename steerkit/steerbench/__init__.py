"""The real-model steering benchmark (``steerkit bench-steer``): steering methods compared on one
model over a strength sweep, judged by independent judges, over several data seeds.

``corpus``: the training texts and held-out prompts; ``judges``: the attribute judges (VADER for
sentiment, a food word list written apart from the training texts); ``measures``: fluency,
diversity and how much steering changes a continuation; ``methods``: the vectors each method
builds from the same activations; ``run``: the sweep, the frontier, calibration and the report."""
