"""The reproduction harness behind ``nnformer reproduce``: NN-Former, its ablations and baselines under one protocol.

A documented part of the library that sits on top of the rest: it trains through :class:`~nnformer.Predictor`
like any user, the command line (``nnformer.cli``) calls it, and nothing below it imports it (the predictor, the
data, the model, search and latency modules never do; tests/test_layout.py checks). Split by job:

* :mod:`.methods`: the registry of compared methods (network + settings) and the paper's published values;
* :mod:`.benchmark_data`: what a sweep needs of a benchmark (graphs, labels, protocol sizes, zero-cost proxies);
  ``DeviceLatencies`` (:mod:`.fewshot`): the same for HELP's devices;
* :mod:`.engine`: the one sweep engine: resumable run store (``runs.jsonl``), lock, process pool, progress, and a
  clean stop on Ctrl-C or SIGTERM;
* :mod:`.sweep`: one run of the accuracy and HELP latency tables and the grid of runs;
* :mod:`.fewshot`, :mod:`.networks`, :mod:`.search_sweep`: HELP's few-shot protocol, NNLQ's whole-network
  protocols and the search comparison, each a list of jobs for the engine;
* :mod:`.reproduce`: each ``nnformer reproduce`` task from its parsed arguments to its tables;
* :mod:`.report`: summaries, the findings the runs answer, and the Markdown / CSV / JSON tables and the plot.

Layout of a results directory: ``<out>/<space>/<recipe tag>/runs.jsonl`` (one line per finished run; a rerun skips
what is there) beside ``table.{md,csv,json}`` and ``tau_vs_n.png`` (``quick.*`` for ``--quick``).
"""
