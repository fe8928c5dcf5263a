"""The reproduction harness behind ``nnformer reproduce``: NN-Former, its ablations and baselines under one protocol.

Not part of the library a user imports to predict; it trains through :class:`~nnformer.Predictor` like any user,
and is split by job:

* :mod:`.methods`: the registry of compared methods (network + settings) and the paper's published values;
* :mod:`.spaces`: what a sweep needs of a benchmark (graphs, labels, protocol sizes, zero-cost proxies);
* :mod:`.sweep`: one run, the grid of runs, the process pool, and the resumable run store (``runs.jsonl``);
* :mod:`.report`: summaries, the findings the runs answer, and the Markdown / CSV / JSON tables and the plot.

Layout of a results directory: ``<out>/<space>/<recipe tag>/runs.jsonl`` (one line per finished run; a rerun skips
what is there) beside ``table.{md,csv,json}`` and ``tau_vs_n.png`` (``quick.*`` for ``--quick``).
"""
