"""The engine benchmark's parts: ``harness`` (arms in lockstep, timing, ratios, the table), ``fixtures`` (the models,
data and Trainer the arms share) and ``figures`` (one function per figure). ``benchmarks/bench_engine.py`` runs
them; benchmarks/README.md explains each figure."""
